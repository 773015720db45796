//! Streaming reader of Decision 130 / 4210 XML.
//!
//! Two shapes circulate: the submission envelope (`GIAMDINHHS` … `HOSO` …
//! `FILEHOSO`/`LOAIHOSO`/`NOIDUNGFILE`, the inner documents base64-encoded or
//! inline) and bare inner documents. Rows are recognised by their own element
//! names (`TONG_HOP`, `CHI_TIET_THUOC`, `CHI_TIET_DVKT`) at any depth, so the
//! wrappers that hospital systems vary (`CHITIEU_…`, `DSACH_…`) do not matter.
//!
//! The envelope is read event by event from a `BufRead`, so memory holds one
//! `HOSO` at a time, never the file; the base64 payloads are decoded and
//! parsed later, in parallel, by the ingest workers.

use std::borrow::Cow;
use std::io::BufRead;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::fields::{RawRecord, RowKind};

/// An XML problem with its byte position in the source.
#[derive(Debug, Clone, thiserror::Error)]
#[error("byte {position}: {message}")]
pub struct XmlError {
    pub position: u64,
    pub message: String,
}

impl XmlError {
    fn new(position: u64, message: impl Into<String>) -> Self {
        XmlError {
            position,
            message: message.into(),
        }
    }
}

/// One base64 inner document of a `HOSO`.
#[derive(Debug, Clone)]
pub struct EncodedDoc {
    /// `LOAIHOSO` (XML1, XML2, …) when it preceded the content.
    pub kind: Option<String>,
    pub base64: Vec<u8>,
    pub position: u64,
}

/// One `HOSO` of an envelope: the tables of one visit, still encoded.
#[derive(Debug, Clone, Default)]
pub struct HosoUnit {
    /// 0-based index of the HOSO in the file.
    pub index: u32,
    pub position: u64,
    /// `MACSKCB` of the envelope, used when a visit lacks MA_CSKCB.
    pub facility: Option<String>,
    /// `NGAYLAP` of the envelope (raw text).
    pub created: Option<String>,
    pub docs: Vec<EncodedDoc>,
    /// Rows of inner documents written inline (as XML children).
    pub inline_rows: Vec<RawRecord<'static>>,
}

/// What the scanner hands out while it reads.
#[derive(Debug)]
pub enum XmlItem {
    Hoso(HosoUnit),
    /// A row outside any HOSO (a bare inner document).
    Row(RawRecord<'static>),
}

/// Collects rows from a stream of XML events.
pub(super) struct RowCollector<'a> {
    depth: usize,
    row: Option<(RawRecord<'a>, usize)>,
    field: Option<(usize, usize)>,
    value: Option<Cow<'a, str>>,
}

impl<'a> RowCollector<'a> {
    pub(super) fn new() -> Self {
        RowCollector {
            depth: 0,
            row: None,
            field: None,
            value: None,
        }
    }

    pub(super) fn start(&mut self, name: &[u8], position: u64) {
        self.depth += 1;
        match &self.row {
            Some((rec, rdepth)) => {
                if self.depth == rdepth + 1 {
                    self.field = rec.kind.field_index(name).map(|f| (f, self.depth));
                    self.value = None;
                }
            }
            None => {
                if let Some(kind) = RowKind::from_element(name) {
                    self.row = Some((RawRecord::new(kind, position), self.depth));
                }
            }
        }
    }

    /// A self-closing element: an empty field, or an empty row.
    pub(super) fn empty(&mut self, name: &[u8], position: u64) -> Option<RawRecord<'a>> {
        if self.row.is_none() {
            if let Some(kind) = RowKind::from_element(name) {
                return Some(RawRecord::new(kind, position));
            }
        }
        None
    }

    pub(super) fn text(&mut self, piece: Cow<'a, str>) {
        if let Some((_, fdepth)) = self.field {
            if fdepth == self.depth {
                self.value = Some(match self.value.take() {
                    None => piece,
                    Some(prev) => Cow::Owned(prev.into_owned() + &piece),
                });
            }
        }
    }

    pub(super) fn end(&mut self) -> Option<RawRecord<'a>> {
        let mut out = None;
        if let Some((fidx, fdepth)) = self.field {
            if fdepth == self.depth {
                if let (Some(v), Some((rec, _))) = (self.value.take(), self.row.as_mut()) {
                    rec.set(fidx, v);
                }
                self.field = None;
            }
        }
        if let Some((_, rdepth)) = &self.row {
            if *rdepth == self.depth {
                out = self.row.take().map(|(r, _)| r);
            }
        }
        self.depth = self.depth.saturating_sub(1);
        out
    }

    pub(super) fn in_row(&self) -> bool {
        self.row.is_some()
    }
}

fn utf8<'a>(bytes: Cow<'a, [u8]>, position: u64) -> Result<Cow<'a, str>, XmlError> {
    match bytes {
        Cow::Borrowed(b) => std::str::from_utf8(b).map(Cow::Borrowed).map_err(|e| {
            XmlError::new(
                position,
                format!("text is not UTF-8 ({e}); wrong encoding?"),
            )
        }),
        Cow::Owned(o) => String::from_utf8(o).map(Cow::Owned).map_err(|e| {
            XmlError::new(
                position,
                format!("text is not UTF-8 ({e}); wrong encoding?"),
            )
        }),
    }
}

fn resolve_ref(r: &quick_xml::events::BytesRef<'_>, position: u64) -> Result<String, XmlError> {
    if let Ok(Some(ch)) = r.resolve_char_ref() {
        return Ok(ch.to_string());
    }
    let name = r
        .decode()
        .map_err(|e| XmlError::new(position, format!("bad entity reference: {e}")))?;
    quick_xml::escape::resolve_predefined_entity(&name)
        .map(|s| s.to_string())
        .ok_or_else(|| XmlError::new(position, format!("unknown entity &{name};")))
}

/// UTF-16 (with a byte-order mark, or without one: every other byte of
/// `<?xml` or `<GIAMDINHHS` is zero) is named as what it is rather than
/// failing later as a truncated file.
fn reject_utf16(bytes: &[u8], position: u64) -> Result<(), XmlError> {
    let bom = bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]);
    let head = &bytes[..bytes.len().min(16)];
    let zeros_at = |odd: usize| {
        head.len() >= 8
            && head.iter().skip(odd).step_by(2).all(|b| *b == 0)
            && head.iter().skip(1 - odd).step_by(2).all(|b| *b != 0)
    };
    let form = if bom {
        Some("UTF-16")
    } else if head.first() == Some(&b'<') && zeros_at(1) {
        Some("UTF-16LE without a byte-order mark")
    } else if head.get(1) == Some(&b'<') && zeros_at(0) {
        Some("UTF-16BE without a byte-order mark")
    } else {
        None
    };
    match form {
        Some(f) => Err(XmlError::new(
            position,
            format!("document is {f}; Decision 130 files must be UTF-8 (wrong encoding)"),
        )),
        None => Ok(()),
    }
}

/// Parses every row of an in-memory document, borrowing values from it.
pub fn parse_rows<'a>(doc: &'a [u8], out: &mut Vec<RawRecord<'a>>) -> Result<(), XmlError> {
    reject_utf16(doc, 0)?;
    let doc = doc.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(doc);
    if super::flat::parse_rows(doc, out) {
        return Ok(());
    }
    parse_rows_general(doc, out)
}

/// [`parse_rows`] over quick-xml: every construct XML allows, errors named
/// with their position. `doc` has no byte-order mark.
pub(super) fn parse_rows_general<'a>(
    doc: &'a [u8],
    out: &mut Vec<RawRecord<'a>>,
) -> Result<(), XmlError> {
    let mut reader = Reader::from_reader(doc);
    let mut c = RowCollector::new();
    loop {
        let pos = reader.buffer_position();
        let ev = reader
            .read_event()
            .map_err(|e| XmlError::new(reader.error_position(), e.to_string()))?;
        match ev {
            Event::Start(e) => c.start(e.local_name().as_ref(), pos),
            Event::Empty(e) => {
                if let Some(r) = c.empty(e.local_name().as_ref(), pos) {
                    out.push(r);
                }
            }
            Event::End(_) => {
                if let Some(r) = c.end() {
                    out.push(r);
                }
            }
            Event::Text(t) if c.in_row() => c.text(utf8(t.into_inner(), pos)?),
            Event::CData(t) if c.in_row() => c.text(utf8(t.into_inner(), pos)?),
            Event::GeneralRef(r) if c.in_row() => c.text(Cow::Owned(resolve_ref(&r, pos)?)),
            Event::Eof => break,
            _ => {}
        }
    }
    if c.in_row() {
        return Err(XmlError::new(
            doc.len() as u64,
            "document ends inside a row (truncated?)",
        ));
    }
    Ok(())
}

/// Decodes a base64 payload (SIMD). Forgiving, as the WHATWG defines it:
/// ASCII whitespace (76-column wrapping, CRLF, indentation) is skipped and
/// the padding is optional (some systems drop it).
pub fn decode_base64(payload: &[u8], position: u64) -> Result<Vec<u8>, XmlError> {
    base64_simd::forgiving_decode_to_vec(payload)
        .map_err(|e| XmlError::new(position, format!("bad base64 in NOIDUNGFILE: {e}")))
}

/// Inner document kinds the engine reads; others (XML4…XML15) are skipped
/// without decoding.
pub(crate) fn wanted_kind(kind: &Option<String>) -> bool {
    match kind.as_deref() {
        None => true,
        Some(k) => matches!(k.trim(), "XML1" | "XML2" | "XML3"),
    }
}

#[derive(Debug, Default)]
struct EnvelopeState {
    in_hoso: bool,
    hoso: HosoUnit,
    hoso_count: u32,
    /// Name of the envelope text element we are inside, if any.
    capture: Option<Capture>,
    text: Vec<u8>,
    kind: Option<String>,
    facility: Option<String>,
    created: Option<String>,
    /// Depth of the NOIDUNGFILE element while inside it.
    content_depth: Option<usize>,
    content_pos: u64,
    inline: bool,
    /// Depth at which the current HOSO opened.
    hoso_open_depth: usize,
    /// Documents of the HOSO before the current FILEHOSO.
    docs_before_file: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Capture {
    Facility,
    Created,
    Kind,
    Content,
}

/// Summary of one scanned file.
#[derive(Debug, Default, Clone)]
pub struct ScanSummary {
    pub is_envelope: bool,
    pub hoso: u32,
    pub loose_rows: u64,
}

/// Reads an XML file (envelope or bare document) and calls `emit` for each
/// HOSO and each loose row, in file order.
pub fn scan<R: BufRead>(
    mut input: R,
    mut emit: impl FnMut(XmlItem) -> Result<(), XmlError>,
) -> Result<ScanSummary, XmlError> {
    let head = input
        .fill_buf()
        .map_err(|e| XmlError::new(0, format!("cannot read: {e}")))?;
    reject_utf16(head, 0)?;
    if head.starts_with(b"\xEF\xBB\xBF") {
        input.consume(3);
    }
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut st = EnvelopeState::default();
    let mut loose = RowCollector::<'static>::new();
    let mut inline = RowCollector::<'static>::new();
    let mut depth = 0usize;
    let mut summary = ScanSummary::default();
    let mut first = true;
    loop {
        buf.clear();
        let pos = reader.buffer_position();
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| XmlError::new(reader.error_position(), e.to_string()))?;
        let in_content = st.content_depth.is_some();
        match ev {
            Event::Start(e) => {
                first = false;
                depth += 1;
                let name = e.local_name();
                let name = name.as_ref();
                if in_content {
                    st.inline = true;
                    inline.start(name, pos);
                    continue;
                }
                if depth == 1 && name == b"GIAMDINHHS" {
                    summary.is_envelope = true;
                }
                loose.start(name, pos);
                match name {
                    b"HOSO" if summary.is_envelope => {
                        st.in_hoso = true;
                        st.hoso_open_depth = depth;
                        st.hoso = HosoUnit {
                            index: st.hoso_count,
                            position: pos,
                            facility: st.facility.clone(),
                            created: st.created.clone(),
                            ..Default::default()
                        };
                        st.hoso_count += 1;
                    }
                    b"FILEHOSO" if st.in_hoso => {
                        st.kind = None;
                        st.docs_before_file = st.hoso.docs.len();
                    }
                    b"LOAIHOSO" if st.in_hoso => st.capture = Some(Capture::Kind),
                    b"NOIDUNGFILE" if st.in_hoso => {
                        st.capture = Some(Capture::Content);
                        st.content_depth = Some(depth);
                        st.content_pos = pos;
                        st.inline = false;
                        inline = RowCollector::new();
                    }
                    b"MACSKCB" if summary.is_envelope && !st.in_hoso => {
                        st.capture = Some(Capture::Facility)
                    }
                    b"NGAYLAP" if summary.is_envelope && !st.in_hoso => {
                        st.capture = Some(Capture::Created)
                    }
                    _ => {}
                }
                st.text.clear();
            }
            Event::Empty(e) => {
                first = false;
                let name = e.local_name();
                if in_content {
                    if let Some(r) = inline.empty(name.as_ref(), pos) {
                        st.hoso.inline_rows.push(r);
                    }
                } else if let Some(r) = loose.empty(name.as_ref(), pos) {
                    summary.loose_rows += 1;
                    emit(XmlItem::Row(r))?;
                }
            }
            Event::End(_) => {
                if let Some(cd) = st.content_depth {
                    if depth > cd {
                        if let Some(r) = inline.end() {
                            st.hoso.inline_rows.push(r);
                        }
                        depth -= 1;
                        continue;
                    }
                }
                if let Some(r) = loose.end() {
                    summary.loose_rows += 1;
                    emit(XmlItem::Row(r))?;
                }
                match st.capture.take() {
                    Some(Capture::Content) => {
                        if !st.inline {
                            st.hoso.docs.push(EncodedDoc {
                                kind: st.kind.clone(),
                                base64: std::mem::take(&mut st.text),
                                position: st.content_pos,
                            });
                        }
                        st.content_depth = None;
                    }
                    Some(Capture::Kind) => {
                        let kind = String::from_utf8_lossy(&st.text).trim().to_string();
                        // LOAIHOSO after NOIDUNGFILE: label the document of this FILEHOSO.
                        for d in st.hoso.docs.iter_mut().skip(st.docs_before_file) {
                            d.kind.get_or_insert_with(|| kind.clone());
                        }
                        st.kind = Some(kind);
                    }
                    Some(Capture::Facility) => {
                        st.facility = Some(String::from_utf8_lossy(&st.text).trim().to_string())
                    }
                    Some(Capture::Created) => {
                        st.created = Some(String::from_utf8_lossy(&st.text).trim().to_string())
                    }
                    None => {}
                }
                depth -= 1;
                if st.in_hoso && depth < st.hoso_open_depth {
                    st.in_hoso = false;
                    summary.hoso += 1;
                    let unit = std::mem::take(&mut st.hoso);
                    emit(XmlItem::Hoso(unit))?;
                }
            }
            Event::Text(t) => {
                if let Some(cap) = st.capture {
                    if cap == Capture::Content && st.inline {
                        inline.text(utf8(Cow::Owned(t.into_inner().into_owned()), pos)?);
                    } else {
                        st.text.extend_from_slice(t.as_ref());
                    }
                } else if loose.in_row() {
                    loose.text(utf8(Cow::Owned(t.into_inner().into_owned()), pos)?);
                }
            }
            Event::CData(t) => {
                if st.capture.is_some() && !(in_content && st.inline) {
                    st.text.extend_from_slice(t.as_ref());
                } else if in_content {
                    inline.text(utf8(Cow::Owned(t.into_inner().into_owned()), pos)?);
                } else if loose.in_row() {
                    loose.text(utf8(Cow::Owned(t.into_inner().into_owned()), pos)?);
                }
            }
            Event::GeneralRef(r) => {
                let s = resolve_ref(&r, pos)?;
                if in_content && st.inline {
                    inline.text(Cow::Owned(s));
                } else if st.capture.is_some() {
                    st.text.extend_from_slice(s.as_bytes());
                } else if loose.in_row() {
                    loose.text(Cow::Owned(s));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 || st.in_hoso {
        return Err(XmlError::new(
            reader.buffer_position(),
            "file ends inside an element (truncated?)",
        ));
    }
    if first {
        return Err(XmlError::new(0, "no XML element found (empty or not XML)"));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn base64_payloads_decode_wrapped_unpadded_or_not_at_all() {
        let doc = b"<CHITIEU_TONGHOP><MA_LK>12</MA_LK></CHITIEU_TONGHOP>";
        let padded = base64_simd::STANDARD.encode_to_string(doc);
        assert!(padded.ends_with('='), "the sample needs padding");
        assert_eq!(decode_base64(padded.as_bytes(), 0).unwrap(), doc);
        let unpadded = padded.trim_end_matches('=');
        assert_eq!(decode_base64(unpadded.as_bytes(), 0).unwrap(), doc);
        let wrapped: String = padded
            .as_bytes()
            .chunks(16)
            .map(|c| format!("  {}\r\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(decode_base64(wrapped.as_bytes(), 0).unwrap(), doc);
        let e = decode_base64(b"PENISVRJRVU*", 77).unwrap_err();
        assert_eq!(e.position, 77);
        assert!(e.message.contains("bad base64"), "{}", e.message);
    }
}
