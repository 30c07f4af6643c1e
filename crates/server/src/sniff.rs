//! Recognising evidence by its content. The file name and the type the client claims are never trusted:
//! an executable renamed `.pdf` is still an executable.

use std::io::{Cursor, Read};

/// The kinds of evidence accepted (the workflow's `documents:` lists name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Pdf,
    Odt,
    Ods,
    Docx,
    Xlsx,
    Png,
    Jpeg,
}

impl DocumentKind {
    /// The name used in workflow definitions.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Odt => "odt",
            Self::Ods => "ods",
            Self::Docx => "docx",
            Self::Xlsx => "xlsx",
            Self::Png => "png",
            Self::Jpeg => "jpeg",
        }
    }

    /// The media type the content is served with.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Odt => "application/vnd.oasis.opendocument.text",
            Self::Ods => "application/vnd.oasis.opendocument.spreadsheet",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const ZIP_SIGNATURE: &[u8] = b"PK\x03\x04";
/// ODF's `mimetype` entry is a short media type; anything longer is not one.
const MAX_MIMETYPE_LEN: u64 = 128;

/// The kind of a document, from its bytes alone; `None` for anything else.
pub fn sniff(bytes: &[u8]) -> Option<DocumentKind> {
    if bytes.starts_with(b"%PDF-") {
        Some(DocumentKind::Pdf)
    } else if bytes.starts_with(PNG_SIGNATURE) {
        Some(DocumentKind::Png)
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        Some(DocumentKind::Jpeg)
    } else if bytes.starts_with(ZIP_SIGNATURE) {
        sniff_zip(bytes)
    } else {
        None
    }
}

/// ODF and OOXML are both ZIP containers: ODF names itself in a `mimetype` entry, OOXML has
/// `[Content_Types].xml` and a `word/` or `xl/` part. Only the central directory and that one small entry
/// are read, from memory.
fn sniff_zip(bytes: &[u8]) -> Option<DocumentKind> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    if let Ok(entry) = archive.by_name("mimetype") {
        let mut mimetype = String::new();
        entry
            .take(MAX_MIMETYPE_LEN)
            .read_to_string(&mut mimetype)
            .ok()?;
        return match mimetype.trim() {
            "application/vnd.oasis.opendocument.text" => Some(DocumentKind::Odt),
            "application/vnd.oasis.opendocument.spreadsheet" => Some(DocumentKind::Ods),
            _ => None,
        };
    }
    let names: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .collect();
    if !names.iter().any(|n| n == "[Content_Types].xml") {
        return None;
    }
    let has = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
    match (has("word/"), has("xl/")) {
        (true, false) => Some(DocumentKind::Docx),
        (false, true) => Some(DocumentKind::Xlsx),
        _ => None,
    }
}

/// A file name fit for display and for `Content-Disposition`: the last path component only, no control
/// characters, no quotes, bounded. It is never used to build a path.
pub fn display_filename(claimed: Option<&str>, kind: DocumentKind) -> String {
    let last = claimed
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\' | '/'))
        .take(200)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        format!("document.{}", kind.name())
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;

    use super::*;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in entries {
            out.start_file(*name, SimpleFileOptions::default()).unwrap();
            out.write_all(content).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn recognises_each_kind_by_content() {
        assert_eq!(sniff(b"%PDF-1.7\n..."), Some(DocumentKind::Pdf));
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(DocumentKind::Png)
        );
        assert_eq!(
            sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"),
            Some(DocumentKind::Jpeg)
        );
        let odt = zip_of(&[
            ("mimetype", b"application/vnd.oasis.opendocument.text"),
            ("content.xml", b"<x/>"),
        ]);
        assert_eq!(sniff(&odt), Some(DocumentKind::Odt));
        let ods = zip_of(&[(
            "mimetype",
            b"application/vnd.oasis.opendocument.spreadsheet",
        )]);
        assert_eq!(sniff(&ods), Some(DocumentKind::Ods));
        let docx = zip_of(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("word/document.xml", b"<w/>"),
        ]);
        assert_eq!(sniff(&docx), Some(DocumentKind::Docx));
        let xlsx = zip_of(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("xl/workbook.xml", b"<x/>"),
        ]);
        assert_eq!(sniff(&xlsx), Some(DocumentKind::Xlsx));
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(sniff(b"\x7fELF\x02\x01\x01\0\0\0"), None);
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0"), None);
        assert_eq!(sniff(b"<html><script>alert(1)</script>"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"PK\x03\x04 truncated"), None);
        let plain_zip = zip_of(&[("payload.exe", b"MZ")]);
        assert_eq!(sniff(&plain_zip), None);
        let odp = zip_of(&[(
            "mimetype",
            b"application/vnd.oasis.opendocument.presentation",
        )]);
        assert_eq!(sniff(&odp), None);
        let both = zip_of(&[
            ("[Content_Types].xml", b"<T/>"),
            ("word/a.xml", b""),
            ("xl/b.xml", b""),
        ]);
        assert_eq!(sniff(&both), None);
    }

    #[test]
    fn file_names_are_for_display_only() {
        assert_eq!(
            display_filename(Some("../../etc/passwd"), DocumentKind::Pdf),
            "passwd"
        );
        assert_eq!(
            display_filename(Some("C:\\Users\\x\\statuts.pdf"), DocumentKind::Pdf),
            "statuts.pdf"
        );
        assert_eq!(
            display_filename(Some("a\"b\r\n.pdf"), DocumentKind::Pdf),
            "ab.pdf"
        );
        assert_eq!(
            display_filename(Some(".."), DocumentKind::Png),
            "document.png"
        );
        assert_eq!(display_filename(None, DocumentKind::Jpeg), "document.jpeg");
    }
}
