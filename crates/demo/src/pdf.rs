//! Small evidence files: a one-page PDF whose text says what it stands for. Valid enough for any reader (a
//! cross-reference table with exact offsets), small enough to generate hundreds at start-up.

/// A one-page PDF (A4, Helvetica) showing `lines`, one under the other.
pub fn one_page(title: &str, lines: &[String]) -> Vec<u8> {
    let mut content = String::from("BT\n/F1 16 Tf\n56 780 Td\n");
    content.push_str(&format!("({}) Tj\n/F1 11 Tf\n", escape(title)));
    for line in lines {
        content.push_str(&format!("0 -22 Td\n({}) Tj\n", escape(line)));
    }
    content.push_str("ET\n");
    let content = latin1(&content);

    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> \
/Contents 5 0 R >>"
            .to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec(),
    ];
    let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    stream.extend_from_slice(&content);
    stream.extend_from_slice(b"\nendstream");
    objects.push(stream);

    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n", objects.len() + 1).as_bytes());
    out.extend_from_slice(b"0000000000 65535 f \n");
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A PDF string literal's content: parentheses and backslashes escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // Typographic quotes and dashes have no place in Latin-1: use their plain forms.
            '\u{2019}' | '\u{2018}' => out.push('\''),
            '\u{201c}' | '\u{201d}' => out.push('"'),
            '\u{2013}' | '\u{2014}' => out.push('-'),
            '\u{a0}' | '\u{202f}' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// WinAnsi bytes for Latin-1 text (accented French letters included); anything else becomes `?`.
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn the_cross_reference_table_points_at_each_object() {
        let pdf = one_page(
            "Délibération (démo)",
            &["Région : Île-de-France (11)".into(), "a \\ b ( c )".into()],
        );
        assert!(pdf.starts_with(b"%PDF-1.4\n"));
        assert!(pdf.ends_with(b"%%EOF\n"));
        let startxref = find(&pdf, b"startxref\n").expect("startxref");
        let tail = std::str::from_utf8(&pdf[startxref + 10..]).expect("ascii tail");
        let xref: usize = tail
            .lines()
            .next()
            .expect("offset")
            .parse()
            .expect("number");
        assert_eq!(&pdf[xref..xref + 5], b"xref\n");
        let table = std::str::from_utf8(&pdf[xref..startxref]).expect("ascii table");
        let entries: Vec<usize> = table
            .lines()
            .skip(3)
            .take_while(|l| l.ends_with(" n "))
            .map(|l| l[..10].parse().expect("offset"))
            .collect();
        assert_eq!(entries.len(), 5);
        for (i, offset) in entries.into_iter().enumerate() {
            let header = format!("{} 0 obj\n", i + 1);
            assert_eq!(&pdf[offset..offset + header.len()], header.as_bytes());
        }
        // The stream's declared length is its real length.
        let stream = find(&pdf, b"stream\n").expect("stream") + 7;
        let end = find(&pdf, b"\nendstream").expect("endstream");
        let declared = find(&pdf, b"/Length ").expect("length") + 8;
        let digits: String = pdf[declared..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| char::from(b))
            .collect();
        assert_eq!(digits.parse::<usize>().expect("length"), end - stream);
        // Accented letters are single WinAnsi bytes; parentheses are escaped.
        assert!(find(&pdf, b"R\xe9gion : \xcele-de-France").is_some());
        assert!(find(&pdf, b"a \\\\ b \\( c \\)").is_some());
    }
}
