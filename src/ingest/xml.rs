//! Streaming reader of Decision 130 / 4210 XML.
//!
//! Two shapes circulate: the submission envelope (`GIAMDINHHS` … `HOSO` …
//! `FILEHOSO`/`LOAIHOSO`/`NOIDUNGFILE`, the inner documents base64-encoded or
//! inline) and bare inner documents. Rows are recognised by their own element
//! names (`TONG_HOP`, `CHI_TIET_THUOC`, `CHI_TIET_DVKT`) at any depth, so the
//! wrappers that hospital systems vary (`CHITIEU_…`, `DSACH_…`) do not matter.
//!
//! A large envelope is read event by event from a `BufRead` ([`scan`]), so
//! memory holds one `HOSO` at a time, never the file; a small one (the
//! usual facility-week file) is scanned from memory ([`scan_slice`]), its
//! payloads left where they lie. Either way the base64 payloads are decoded
//! and parsed later, in parallel, by the ingest workers.

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
    pub payload: Payload,
    pub position: u64,
}

/// The base64 text of an inner document.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Copied out of a stream.
    Owned(Vec<u8>),
    /// Its place in the file held in memory ([`scan_slice`]).
    At(std::ops::Range<usize>),
}

impl EncodedDoc {
    /// The base64 text; `file` is the file [`scan_slice`] read (empty for a
    /// stream).
    pub fn base64<'a>(&'a self, file: &'a [u8]) -> &'a [u8] {
        match &self.payload {
            Payload::Owned(v) => v,
            Payload::At(at) => file.get(at.clone()).unwrap_or_default(),
        }
    }
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

    /// A whole `<NAME>value</NAME>` element seen at once by the flat
    /// scanner: a field of the row being read, handled as its start, text
    /// and end would be. False (nothing done) anywhere else.
    pub(super) fn leaf(&mut self, name: &[u8], value: &'a str) -> bool {
        match &mut self.row {
            Some((rec, rdepth)) if self.depth == *rdepth => {
                if let Some(f) = rec.kind.field_index(name) {
                    if !value.is_empty() {
                        rec.set(f, Cow::Borrowed(value));
                    }
                }
                true
            }
            _ => false,
        }
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
    let mut scanner = Scanner::new(None);
    loop {
        buf.clear();
        let pos = reader.buffer_position();
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| XmlError::new(reader.error_position(), e.to_string()))?;
        if let Event::Eof = ev {
            break;
        }
        scanner.event(ev, pos, &mut emit)?;
    }
    scanner.finish(reader.buffer_position())
}

/// [`scan`] over a file held in memory: the events borrow from it, and each
/// base64 payload is kept as its place in `file` ([`Payload::At`]) rather
/// than copied; [`EncodedDoc::base64`] finds it there.
pub fn scan_slice(
    file: &[u8],
    mut emit: impl FnMut(XmlItem) -> Result<(), XmlError>,
) -> Result<ScanSummary, XmlError> {
    reject_utf16(file, 0)?;
    let body = file.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(file);
    let mut reader = Reader::from_reader(body);
    let mut scanner = Scanner::new(Some(file));
    loop {
        let pos = reader.buffer_position();
        let ev = reader
            .read_event()
            .map_err(|e| XmlError::new(reader.error_position(), e.to_string()))?;
        if let Event::Eof = ev {
            break;
        }
        scanner.event(ev, pos, &mut emit)?;
    }
    scanner.finish(reader.buffer_position())
}

/// The envelope's state machine, fed one event at a time.
struct Scanner<'f> {
    st: EnvelopeState,
    loose: RowCollector<'static>,
    inline: RowCollector<'static>,
    depth: usize,
    summary: ScanSummary,
    first: bool,
    /// The whole file, when it is in memory.
    file: Option<&'f [u8]>,
    /// The payload being read, as its place in `file`, while it is one
    /// piece of it.
    content: Option<std::ops::Range<usize>>,
}

impl<'f> Scanner<'f> {
    fn new(file: Option<&'f [u8]>) -> Self {
        Scanner {
            st: EnvelopeState::default(),
            loose: RowCollector::new(),
            inline: RowCollector::new(),
            depth: 0,
            summary: ScanSummary::default(),
            first: true,
            file,
            content: None,
        }
    }

    /// Keeps captured text: a payload that is one piece of the file in
    /// memory as its range there, anything else copied.
    fn capture(&mut self, bytes: &[u8]) {
        if self.st.capture == Some(Capture::Content) && self.st.text.is_empty() {
            if let (None, Some(at)) = (&self.content, self.offset_in_file(bytes)) {
                self.content = Some(at..at + bytes.len());
                return;
            }
        }
        if let (Some(at), Some(file)) = (self.content.take(), self.file) {
            self.st.text.extend_from_slice(&file[at]);
        }
        self.st.text.extend_from_slice(bytes);
    }

    /// Where `bytes` starts in the file, when they are part of it.
    fn offset_in_file(&self, bytes: &[u8]) -> Option<usize> {
        let file = self.file?;
        let start = (bytes.as_ptr() as usize).checked_sub(file.as_ptr() as usize)?;
        (start + bytes.len() <= file.len()).then_some(start)
    }

    fn event(
        &mut self,
        ev: Event<'_>,
        pos: u64,
        emit: &mut impl FnMut(XmlItem) -> Result<(), XmlError>,
    ) -> Result<(), XmlError> {
        let in_content = self.st.content_depth.is_some();
        match ev {
            Event::Start(e) => {
                self.first = false;
                self.depth += 1;
                let name = e.local_name();
                let name = name.as_ref();
                if in_content {
                    self.st.inline = true;
                    self.inline.start(name, pos);
                    return Ok(());
                }
                if self.depth == 1 && name == b"GIAMDINHHS" {
                    self.summary.is_envelope = true;
                }
                self.loose.start(name, pos);
                match name {
                    b"HOSO" if self.summary.is_envelope => {
                        self.st.in_hoso = true;
                        self.st.hoso_open_depth = self.depth;
                        self.st.hoso = HosoUnit {
                            index: self.st.hoso_count,
                            position: pos,
                            facility: self.st.facility.clone(),
                            created: self.st.created.clone(),
                            ..Default::default()
                        };
                        self.st.hoso_count += 1;
                    }
                    b"FILEHOSO" if self.st.in_hoso => {
                        self.st.kind = None;
                        self.st.docs_before_file = self.st.hoso.docs.len();
                    }
                    b"LOAIHOSO" if self.st.in_hoso => self.st.capture = Some(Capture::Kind),
                    b"NOIDUNGFILE" if self.st.in_hoso => {
                        self.st.capture = Some(Capture::Content);
                        self.st.content_depth = Some(self.depth);
                        self.st.content_pos = pos;
                        self.st.inline = false;
                        self.inline = RowCollector::new();
                    }
                    b"MACSKCB" if self.summary.is_envelope && !self.st.in_hoso => {
                        self.st.capture = Some(Capture::Facility)
                    }
                    b"NGAYLAP" if self.summary.is_envelope && !self.st.in_hoso => {
                        self.st.capture = Some(Capture::Created)
                    }
                    _ => {}
                }
                self.st.text.clear();
                self.content = None;
            }
            Event::Empty(e) => {
                self.first = false;
                let name = e.local_name();
                if in_content {
                    if let Some(r) = self.inline.empty(name.as_ref(), pos) {
                        self.st.hoso.inline_rows.push(r);
                    }
                } else if let Some(r) = self.loose.empty(name.as_ref(), pos) {
                    self.summary.loose_rows += 1;
                    emit(XmlItem::Row(r))?;
                }
            }
            Event::End(_) => {
                if let Some(cd) = self.st.content_depth {
                    if self.depth > cd {
                        if let Some(r) = self.inline.end() {
                            self.st.hoso.inline_rows.push(r);
                        }
                        self.depth -= 1;
                        return Ok(());
                    }
                }
                if let Some(r) = self.loose.end() {
                    self.summary.loose_rows += 1;
                    emit(XmlItem::Row(r))?;
                }
                match self.st.capture.take() {
                    Some(Capture::Content) => {
                        if !self.st.inline {
                            let payload = match self.content.take() {
                                Some(at) => Payload::At(at),
                                None => Payload::Owned(std::mem::take(&mut self.st.text)),
                            };
                            self.st.hoso.docs.push(EncodedDoc {
                                kind: self.st.kind.clone(),
                                payload,
                                position: self.st.content_pos,
                            });
                        }
                        self.st.content_depth = None;
                    }
                    Some(Capture::Kind) => {
                        let kind = String::from_utf8_lossy(&self.st.text).trim().to_string();
                        // LOAIHOSO after NOIDUNGFILE: label the document of this FILEHOSO.
                        for d in self.st.hoso.docs.iter_mut().skip(self.st.docs_before_file) {
                            d.kind.get_or_insert_with(|| kind.clone());
                        }
                        self.st.kind = Some(kind);
                    }
                    Some(Capture::Facility) => {
                        self.st.facility =
                            Some(String::from_utf8_lossy(&self.st.text).trim().to_string())
                    }
                    Some(Capture::Created) => {
                        self.st.created =
                            Some(String::from_utf8_lossy(&self.st.text).trim().to_string())
                    }
                    None => {}
                }
                self.depth -= 1;
                if self.st.in_hoso && self.depth < self.st.hoso_open_depth {
                    self.st.in_hoso = false;
                    self.summary.hoso += 1;
                    let unit = std::mem::take(&mut self.st.hoso);
                    emit(XmlItem::Hoso(unit))?;
                }
            }
            Event::Text(t) => {
                if let Some(cap) = self.st.capture {
                    if cap == Capture::Content && self.st.inline {
                        self.inline
                            .text(utf8(Cow::Owned(t.into_inner().into_owned()), pos)?);
                    } else {
                        self.capture(t.as_ref());
                    }
                } else if self.loose.in_row() {
                    self.loose
                        .text(utf8(Cow::Owned(t.into_inner().into_owned()), pos)?);
                }
            }
            Event::CData(t) => {
                if self.st.capture.is_some() && !(in_content && self.st.inline) {
                    self.capture(t.as_ref());
                } else if in_content {
                    self.inline
                        .text(utf8(Cow::Owned(t.into_inner().into_owned()), pos)?);
                } else if self.loose.in_row() {
                    self.loose
                        .text(utf8(Cow::Owned(t.into_inner().into_owned()), pos)?);
                }
            }
            Event::GeneralRef(r) => {
                let s = resolve_ref(&r, pos)?;
                if in_content && self.st.inline {
                    self.inline.text(Cow::Owned(s));
                } else if self.st.capture.is_some() {
                    self.capture(s.as_bytes());
                } else if self.loose.in_row() {
                    self.loose.text(Cow::Owned(s));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self, end: u64) -> Result<ScanSummary, XmlError> {
        if self.depth != 0 || self.st.in_hoso {
            return Err(XmlError::new(
                end,
                "file ends inside an element (truncated?)",
            ));
        }
        if self.first {
            return Err(XmlError::new(0, "no XML element found (empty or not XML)"));
        }
        Ok(self.summary)
    }
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
