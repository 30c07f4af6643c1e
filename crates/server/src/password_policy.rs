//! What a new password must be (OWASP ASVS 5.0 V6.2, NIST SP 800-63B): long enough, not too long to hash,
//! not a common password, not guessable from the patterns crackers try first or from the account's own
//! name and address — and nothing else: no composition rules, no forced rotation.

/// Shorter passwords are refused: the API is on the network.
pub const MIN_CHARS: usize = 12;
/// A bound on argon2's input, far above any passphrase (ASVS asks to allow at least 64).
pub const MAX_CHARS: usize = 128;

/// Common passwords of at least [`MIN_CHARS`] characters, lower-cased, one per line (`#` lines: provenance).
const COMMON: &str = include_str!("common_passwords.txt");

/// Why a new password is refused, in the words shown to its owner (French, then English).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    #[error(
        "le mot de passe doit compter au moins {MIN_CHARS} caractères / the password must have at least \
         {MIN_CHARS} characters"
    )]
    TooShort,
    #[error(
        "le mot de passe ne peut dépasser {MAX_CHARS} caractères / the password cannot exceed {MAX_CHARS} \
         characters"
    )]
    TooLong,
    #[error(
        "ce mot de passe figure parmi les plus courants : choisissez-en un autre / this is one of the most \
         common passwords: choose another"
    )]
    Common,
    #[error(
        "ce mot de passe est trop facile à deviner (mots courants, suites, répétitions, dates ou votre nom) : \
         une phrase de plusieurs mots inhabituels convient / this password is too easy to guess (common \
         words, sequences, repeats, dates or your own name): a phrase of several unusual words will do"
    )]
    Guessable,
}

/// Checks a password someone chose, knowing what an attacker would try first about its owner (`context`:
/// the account's email address and name).
pub fn check(password: &str, context: &[&str]) -> Result<(), WeakPassword> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(WeakPassword::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(WeakPassword::TooLong);
    }
    let lowered = password.to_lowercase();
    if COMMON
        .lines()
        .filter(|line| !line.starts_with('#'))
        .any(|common| common == lowered)
    {
        return Err(WeakPassword::Common);
    }
    // Parts of the address count as well as the whole: `jeanne.dupont@region.fr` gives `jeanne`, `dupont`,
    // `region`.
    let words: Vec<&str> = context
        .iter()
        .flat_map(|text| text.split(|c: char| !c.is_alphanumeric()))
        .chain(context.iter().copied())
        .filter(|word| word.chars().count() >= 3)
        .collect();
    // zxcvbn's score 3 is "safely unguessable: moderate protection from offline slow-hash scenario", which
    // argon2id is.
    if zxcvbn::zxcvbn(password, &words).score() < zxcvbn::Score::Three {
        return Err(WeakPassword::Guessable);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_bounds_count_characters_not_bytes() {
        assert_eq!(check("Cour7-Tr3s!", &[]), Err(WeakPassword::TooShort));
        // Twelve characters, more bytes: accepted on length, and long enough here to be unguessable.
        assert_eq!(check("éléphantçàùœ", &[]), Ok(()));
        let long = "pomme de terre ".repeat(9);
        assert!(long.chars().count() > MAX_CHARS);
        assert_eq!(check(&long, &[]), Err(WeakPassword::TooLong));
        let at_max: String = "wx7!rKq2vz-Lm".chars().cycle().take(MAX_CHARS).collect();
        assert_eq!(check(&at_max, &[]), Ok(()));
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        assert_eq!(check("qwerty123456", &[]), Err(WeakPassword::Common));
        assert_eq!(check("QWERTY123456", &[]), Err(WeakPassword::Common));
        assert_eq!(check("1qaz2wsx3edc", &[]), Err(WeakPassword::Common));
    }

    #[test]
    fn guessable_patterns_and_the_owners_own_name_are_refused() {
        assert_eq!(check("aaaaaaaaaaaaaaaa", &[]), Err(WeakPassword::Guessable));
        assert_eq!(check("abcdefghijklmnop", &[]), Err(WeakPassword::Guessable));
        assert_eq!(check("password12345678", &[]), Err(WeakPassword::Guessable));
        // Unknown words to the estimator, until they are the owner's own name and address.
        let password = "breizhkerbrat";
        assert_eq!(check(password, &[]), Ok(()));
        let owner = ["l.kerbrat@breizh.bzh", "Loïc Kerbrat Quemener"];
        assert_eq!(check(password, &owner), Err(WeakPassword::Guessable));
    }

    #[test]
    fn no_composition_rule_a_long_phrase_of_lowercase_words_passes() {
        assert_eq!(check("girafe violon nuage bretelle", &[]), Ok(()));
        assert_eq!(check("ornithorynquebleuvendredi", &[]), Ok(()));
    }
}
