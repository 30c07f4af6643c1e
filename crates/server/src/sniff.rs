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
/// A ZIP archive's end-of-central-directory record: what a reader looks for, from the end of the file.
const ZIP_END_SIGNATURE: &[u8] = b"PK\x05\x06";
/// The end record lies within its own 22 bytes plus a comment of at most 65,535 from the end.
const ZIP_END_SEARCH: usize = 22 + 65_535;
/// ODF's `mimetype` entry is a short media type; anything longer is not one.
const MAX_MIMETYPE_LEN: u64 = 128;

/// How far an office document (a ZIP container) may expand, and how many parts it may hold, before it is
/// taken for an archive bomb (ASVS 5.0 V5.2.3). A 20 MiB spreadsheet of real data stays far below.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveLimits {
    pub expanded_bytes: u64,
    pub entries: usize,
}

pub const ARCHIVE_LIMITS: ArchiveLimits = ArchiveLimits {
    expanded_bytes: 256 * 1024 * 1024,
    entries: 10_000,
};

/// Why a file is not taken as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unaccepted {
    #[error(
        "the file is not a PDF, ODT, ODS, DOCX, XLSX, PNG or JPEG document (recognised by its content)"
    )]
    Unrecognised,
    #[error(
        "the document expands to more than {} MiB or holds more than {} parts: refused as a possible archive \
         bomb",
        ARCHIVE_LIMITS.expanded_bytes / (1024 * 1024),
        ARCHIVE_LIMITS.entries
    )]
    ArchiveBomb,
    #[error(
        "the {0} file also carries a ZIP archive: refused as a polyglot (send the document alone)"
    )]
    Polyglot(&'static str),
}

impl Unaccepted {
    /// The label of the refusal in the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unrecognised => "unrecognised",
            Self::ArchiveBomb => "archive_bomb",
            Self::Polyglot(_) => "polyglot",
        }
    }
}

/// The kind of a document, from its bytes alone. Office documents are expanded (into nothing, in bounded
/// memory) to check their real size: run it off the async workers.
pub fn sniff(bytes: &[u8]) -> Result<DocumentKind, Unaccepted> {
    sniff_within(bytes, ARCHIVE_LIMITS)
}

pub fn sniff_within(bytes: &[u8], limits: ArchiveLimits) -> Result<DocumentKind, Unaccepted> {
    let kind = if bytes.starts_with(b"%PDF-") {
        DocumentKind::Pdf
    } else if bytes.starts_with(PNG_SIGNATURE) {
        DocumentKind::Png
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        DocumentKind::Jpeg
    } else if bytes.starts_with(ZIP_SIGNATURE) {
        return sniff_zip(bytes, limits);
    } else {
        return Err(Unaccepted::Unrecognised);
    };
    // A PDF or an image that a ZIP reader would also open (a JAR, an office document) is two files in
    // one: what the reviewer opens need not be what was reviewed.
    let tail = &bytes[bytes.len().saturating_sub(ZIP_END_SEARCH)..];
    if tail
        .windows(ZIP_END_SIGNATURE.len())
        .any(|w| w == ZIP_END_SIGNATURE)
    {
        return Err(Unaccepted::Polyglot(kind.name()));
    }
    Ok(kind)
}

/// ODF and OOXML are both ZIP containers: ODF names itself in a `mimetype` entry, OOXML has
/// `[Content_Types].xml` and a `word/` or `xl/` part. Once recognised, every part is expanded into nothing,
/// counting, and the count stops at the limit: the declared sizes are not trusted either.
fn sniff_zip(bytes: &[u8], limits: ArchiveLimits) -> Result<DocumentKind, Unaccepted> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|_| Unaccepted::Unrecognised)?;
    let kind = zip_kind(&mut archive).ok_or(Unaccepted::Unrecognised)?;
    if archive.len() > limits.entries {
        return Err(Unaccepted::ArchiveBomb);
    }
    let mut budget = limits.expanded_bytes;
    for index in 0..archive.len() {
        let entry = archive
            .by_index(index)
            .map_err(|_| Unaccepted::Unrecognised)?;
        let expanded = std::io::copy(&mut entry.take(budget + 1), &mut std::io::sink())
            .map_err(|_| Unaccepted::Unrecognised)?;
        if expanded > budget {
            return Err(Unaccepted::ArchiveBomb);
        }
        budget -= expanded;
    }
    Ok(kind)
}

fn zip_kind(archive: &mut zip::ZipArchive<Cursor<&[u8]>>) -> Option<DocumentKind> {
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
        assert_eq!(sniff(b"%PDF-1.7\n..."), Ok(DocumentKind::Pdf));
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Ok(DocumentKind::Png)
        );
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"), Ok(DocumentKind::Jpeg));
        let odt = zip_of(&[
            ("mimetype", b"application/vnd.oasis.opendocument.text"),
            ("content.xml", b"<x/>"),
        ]);
        assert_eq!(sniff(&odt), Ok(DocumentKind::Odt));
        let ods = zip_of(&[(
            "mimetype",
            b"application/vnd.oasis.opendocument.spreadsheet",
        )]);
        assert_eq!(sniff(&ods), Ok(DocumentKind::Ods));
        let docx = zip_of(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("word/document.xml", b"<w/>"),
        ]);
        assert_eq!(sniff(&docx), Ok(DocumentKind::Docx));
        let xlsx = zip_of(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("xl/workbook.xml", b"<x/>"),
        ]);
        assert_eq!(sniff(&xlsx), Ok(DocumentKind::Xlsx));
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(
            sniff(b"\x7fELF\x02\x01\x01\0\0\0"),
            Err(Unaccepted::Unrecognised)
        );
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0"), Err(Unaccepted::Unrecognised));
        assert_eq!(
            sniff(b"<html><script>alert(1)</script>"),
            Err(Unaccepted::Unrecognised)
        );
        assert_eq!(sniff(b""), Err(Unaccepted::Unrecognised));
        assert_eq!(
            sniff(b"PK\x03\x04 truncated"),
            Err(Unaccepted::Unrecognised)
        );
        let plain_zip = zip_of(&[("payload.exe", b"MZ")]);
        assert_eq!(sniff(&plain_zip), Err(Unaccepted::Unrecognised));
        let odp = zip_of(&[(
            "mimetype",
            b"application/vnd.oasis.opendocument.presentation",
        )]);
        assert_eq!(sniff(&odp), Err(Unaccepted::Unrecognised));
        let both = zip_of(&[
            ("[Content_Types].xml", b"<T/>"),
            ("word/a.xml", b""),
            ("xl/b.xml", b""),
        ]);
        assert_eq!(sniff(&both), Err(Unaccepted::Unrecognised));
    }

    #[test]
    fn active_svg_and_html_are_not_evidence() {
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
        assert_eq!(sniff(svg), Err(Unaccepted::Unrecognised));
        let xml_svg = br#"<?xml version="1.0"?><svg onload="alert(1)"/>"#;
        assert_eq!(sniff(xml_svg), Err(Unaccepted::Unrecognised));
    }

    #[test]
    fn polyglots_are_refused() {
        let docx = zip_of(&[
            ("[Content_Types].xml", b"<T/>"),
            ("word/document.xml", b"<w/>"),
        ]);
        let mut pdf_zip = b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n".to_vec();
        pdf_zip.extend_from_slice(&docx);
        assert_eq!(sniff(&pdf_zip), Err(Unaccepted::Polyglot("pdf")));
        let mut png_zip = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png_zip.extend_from_slice(&docx);
        assert_eq!(sniff(&png_zip), Err(Unaccepted::Polyglot("png")));
        let mut jpeg_zip = b"\xff\xd8\xff\xe0\0\x10JFIF".to_vec();
        jpeg_zip.extend_from_slice(&docx);
        assert_eq!(sniff(&jpeg_zip), Err(Unaccepted::Polyglot("jpeg")));
        // The same PDF alone is a PDF.
        assert_eq!(
            sniff(b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n"),
            Ok(DocumentKind::Pdf)
        );
    }

    fn deflated_zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, content) in entries {
            out.start_file(*name, options).unwrap();
            out.write_all(content).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn archive_bombs_are_refused_by_what_they_expand_to() {
        let limits = ArchiveLimits {
            expanded_bytes: 1024 * 1024,
            entries: 20,
        };
        // 4 MiB of zeros deflate to a few KiB: a small upload that would expand past the limit.
        let zeros = vec![0u8; 4 * 1024 * 1024];
        let bomb = deflated_zip_of(&[
            ("[Content_Types].xml", b"<T/>"),
            ("word/document.xml", &zeros),
        ]);
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        assert_eq!(sniff_within(&bomb, limits), Err(Unaccepted::ArchiveBomb));
        // Spread over many small parts, the total counts.
        let part = vec![0u8; 100 * 1024];
        let mut spread: Vec<(String, &[u8])> = vec![("[Content_Types].xml".into(), b"<T/>")];
        for i in 0..15 {
            spread.push((format!("xl/sheet{i}.xml"), &part));
        }
        let spread: Vec<(&str, &[u8])> = spread.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        assert_eq!(
            sniff_within(&deflated_zip_of(&spread), limits),
            Err(Unaccepted::ArchiveBomb)
        );
        // Too many parts, however small.
        let mut many: Vec<(String, &[u8])> = vec![("[Content_Types].xml".into(), b"<T/>")];
        for i in 0..25 {
            many.push((format!("word/part{i}.xml"), b"<p/>"));
        }
        let many: Vec<(&str, &[u8])> = many.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        assert_eq!(
            sniff_within(&deflated_zip_of(&many), limits),
            Err(Unaccepted::ArchiveBomb)
        );
        // Within the limits, the same shapes are documents.
        let fine = deflated_zip_of(&[
            ("[Content_Types].xml", b"<T/>"),
            ("word/document.xml", &part),
        ]);
        assert_eq!(sniff_within(&fine, limits), Ok(DocumentKind::Docx));
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
