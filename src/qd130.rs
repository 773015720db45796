//! Writer of Decision 130 submission files: the envelope (`GIAMDINHHS`)
//! with base64 inner documents XML1/XML2/XML3, in the layouts hospital
//! systems produce. Used by the synthetic generator and by tests; the
//! variations ([`Style`]) are the ones the reader must take without
//! complaint.

use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// One XML row: field name → value, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub fields: Vec<(&'static str, String)>,
}

impl Record {
    pub fn set(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name, value)),
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| *n != name);
    }
}

/// The tables of one visit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hoso {
    pub xml1: Record,
    pub xml2: Vec<Record>,
    pub xml3: Vec<Record>,
}

/// Layout variations seen in real files.
#[derive(Debug, Clone, Default)]
pub struct Style {
    /// Wrap base64 at 76 columns with CRLF.
    pub wrap_base64: bool,
    /// Write inner documents inline as XML children instead of base64.
    pub inline: bool,
    /// Start with a UTF-8 byte-order mark.
    pub bom: bool,
    /// Indent with Windows line endings.
    pub pretty_crlf: bool,
    /// Omit the `CHITIEU_…` wrappers of XML2/XML3.
    pub no_wrappers: bool,
}

fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

fn write_fields(out: &mut Vec<u8>, r: &Record, nl: &str) {
    for (n, v) in &r.fields {
        if v.is_empty() {
            out.extend_from_slice(format!("<{n}/>{nl}").as_bytes());
        } else {
            out.extend_from_slice(format!("<{n}>{}</{n}>{nl}", escape(v)).as_bytes());
        }
    }
}

/// The inner documents of a HOSO (without XML declarations when inline).
pub fn inner_documents(h: &Hoso, style: &Style, declaration: bool) -> [Vec<u8>; 3] {
    let nl = if style.pretty_crlf { "\r\n" } else { "" };
    let decl = if declaration {
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
    } else {
        ""
    };
    let mut x1 = Vec::new();
    x1.extend_from_slice(format!("{decl}<TONG_HOP>{nl}").as_bytes());
    write_fields(&mut x1, &h.xml1, nl);
    x1.extend_from_slice(b"</TONG_HOP>");
    let table = |rows: &[Record], outer: &str, list: &str, row: &str| {
        let mut x = Vec::new();
        x.extend_from_slice(decl.as_bytes());
        if !style.no_wrappers {
            x.extend_from_slice(format!("<{outer}>{nl}").as_bytes());
        }
        x.extend_from_slice(format!("<{list}>{nl}").as_bytes());
        for r in rows {
            x.extend_from_slice(format!("<{row}>{nl}").as_bytes());
            write_fields(&mut x, r, nl);
            x.extend_from_slice(format!("</{row}>{nl}").as_bytes());
        }
        x.extend_from_slice(format!("</{list}>").as_bytes());
        if !style.no_wrappers {
            x.extend_from_slice(format!("{nl}</{outer}>").as_bytes());
        }
        x
    };
    let x2 = table(
        &h.xml2,
        "CHITIEU_CHITIET_THUOC",
        "DSACH_CHI_TIET_THUOC",
        "CHI_TIET_THUOC",
    );
    let x3 = table(
        &h.xml3,
        "CHITIEU_CHITIET_DVKT_VTYT",
        "DSACH_CHI_TIET_DVKT",
        "CHI_TIET_DVKT",
    );
    [x1, x2, x3]
}

fn base64_text(doc: &[u8], wrap: bool) -> String {
    let b = STANDARD.encode(doc);
    if !wrap {
        return b;
    }
    let mut out = String::with_capacity(b.len() + b.len() / 38);
    for (i, chunk) in b.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
    }
    out
}

/// Writes one envelope holding `hosos`, sent by `facility` on `created`
/// (yyyyMMdd).
pub fn write_envelope<W: Write>(
    w: &mut W,
    facility: &str,
    created: &str,
    hosos: &[Hoso],
    style: &Style,
) -> io::Result<()> {
    let nl = if style.pretty_crlf { "\r\n" } else { "" };
    if style.bom {
        w.write_all(b"\xEF\xBB\xBF")?;
    }
    write!(
        w,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>{nl}<GIAMDINHHS xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">{nl}\
         <THONGTINDONVI><MACSKCB>{facility}</MACSKCB></THONGTINDONVI>{nl}<THONGTINHOSO>{nl}<NGAYLAP>{created}</NGAYLAP>{nl}\
         <SOLUONGHOSO>{}</SOLUONGHOSO>{nl}<DANHSACHHOSO>{nl}",
        hosos.len()
    )?;
    for h in hosos {
        write!(w, "<HOSO>{nl}")?;
        let docs = inner_documents(h, style, !style.inline);
        for (kind, doc) in ["XML1", "XML2", "XML3"].iter().zip(docs.iter()) {
            write!(
                w,
                "<FILEHOSO>{nl}<LOAIHOSO>{kind}</LOAIHOSO>{nl}<NOIDUNGFILE>"
            )?;
            if style.inline {
                w.write_all(doc)?;
            } else {
                if style.wrap_base64 {
                    write!(w, "{nl}")?;
                }
                w.write_all(base64_text(doc, style.wrap_base64).as_bytes())?;
            }
            write!(w, "</NOIDUNGFILE>{nl}</FILEHOSO>{nl}")?;
        }
        write!(w, "</HOSO>{nl}")?;
    }
    write!(
        w,
        "</DANHSACHHOSO>{nl}</THONGTINHOSO>{nl}<CHUKYDONVI/>{nl}</GIAMDINHHS>{nl}"
    )?;
    Ok(())
}
