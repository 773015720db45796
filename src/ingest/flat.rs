//! The fast path for inner documents as hospital systems write them: flat
//! elements, short values, no entities, comments or CDATA.
//!
//! A decoded XML1/XML2/XML3 document is a few kilobytes of `<FIELD>value</FIELD>`
//! pairs, ~40 bytes each, so the parse is dominated by the cost per element
//! rather than per byte. This scanner finds the markup with `memchr`, checks
//! UTF-8 once for the whole document and borrows every value from it. It
//! handles only what it can handle exactly as the general parser
//! ([`super::xml::parse_rows`] over quick-xml) does, and gives up on anything
//! else — an entity or character reference, a comment, CDATA, a processing
//! instruction after the start, a prefixed or unusual name, a mismatched or
//! unclosed tag, bytes that are not UTF-8 — so that the general parser reads
//! the document again and reports what is wrong with the same words and
//! positions. A property test holds the two to the same rows.

use std::borrow::Cow;

use memchr::{memchr, memchr3};

use super::fields::RawRecord;
use super::xml::RowCollector;

/// Appends the rows of `doc` (BOM already stripped) to `out` and returns
/// true, or returns false, leaving `out` as it was, when the document needs
/// the general parser.
pub(super) fn parse_rows<'a>(doc: &'a [u8], out: &mut Vec<RawRecord<'a>>) -> bool {
    let start = out.len();
    let done = scan(doc, out);
    if !done {
        out.truncate(start);
    }
    done
}

fn scan<'a>(doc: &'a [u8], out: &mut Vec<RawRecord<'a>>) -> bool {
    let Ok(text) = std::str::from_utf8(doc) else {
        return false;
    };
    if memchr(b'&', doc).is_some() {
        return false;
    }
    let mut c = RowCollector::new();
    let mut open: Vec<&[u8]> = Vec::with_capacity(8);
    let mut i = 0;
    while i < doc.len() {
        let Some(lt) = memchr(b'<', &doc[i..]).map(|d| i + d) else {
            // Trailing text: outside any element once the tags are balanced.
            break;
        };
        if lt > i && c.in_row() {
            c.text(Cow::Borrowed(&text[i..lt]));
        }
        let Some(gt) = tag_end(doc, lt + 1) else {
            return false;
        };
        let tag = &doc[lt + 1..gt];
        let pos = lt as u64;
        match tag.first() {
            Some(b'?') => {
                // Only the XML declaration at the very start.
                if lt != 0 || tag.last() != Some(&b'?') {
                    return false;
                }
            }
            Some(b'!') | None => return false,
            Some(b'/') => {
                let name = &tag[1..];
                if !plain_name(name) || open.pop() != Some(name) {
                    return false;
                }
                if let Some(r) = c.end() {
                    out.push(r);
                }
            }
            Some(_) => {
                let empty = tag.last() == Some(&b'/');
                let body = if empty { &tag[..tag.len() - 1] } else { tag };
                let name_len = body
                    .iter()
                    .position(|b| b.is_ascii_whitespace())
                    .unwrap_or(body.len());
                let name = &body[..name_len];
                if !plain_name(name) {
                    return false;
                }
                if empty {
                    if let Some(r) = c.empty(name, pos) {
                        out.push(r);
                    }
                } else {
                    // A field and its value in one step (the usual shape),
                    // when the collector takes it as a field of its row.
                    if let Some((lt2, after)) = leaf_end(doc, gt + 1, name) {
                        if c.leaf(name, &text[gt + 1..lt2]) {
                            i = after;
                            continue;
                        }
                    }
                    open.push(name);
                    c.start(name, pos);
                }
            }
        }
        i = gt + 1;
    }
    open.is_empty() && !c.in_row()
}

/// When the text from `from` runs to `</name>`: where that closing tag
/// starts and the index just after it.
fn leaf_end(doc: &[u8], from: usize, name: &[u8]) -> Option<(usize, usize)> {
    let lt = from + memchr(b'<', &doc[from..])?;
    let close = doc.get(lt + 1..lt + 3 + name.len())?;
    let (slash, rest) = close.split_first()?;
    let (gt, tag) = rest.split_last()?;
    (*slash == b'/' && *gt == b'>' && tag == name).then_some((lt, lt + 3 + name.len()))
}

/// The index of the `>` closing the tag whose content starts at `from`,
/// skipping quoted attribute values (they may hold `>`).
fn tag_end(doc: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr3(b'>', b'"', b'\'', &doc[from..])?;
        match doc[at] {
            b'>' => return Some(at),
            quote => from = at + 1 + memchr(quote, &doc[at + 1..])? + 1,
        }
    }
}

/// A name both parsers read the same way: ASCII letters, digits, `_`, `-`
/// and `.`, not starting with a digit, `-` or `.`; no namespace prefix.
fn plain_name(name: &[u8]) -> bool {
    match name.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::xml::parse_rows_general;
    use super::*;

    /// Both parsers on `doc`: the fast one's rows, if it took the document,
    /// and the general one's.
    fn both(
        doc: &[u8],
    ) -> (
        Option<Vec<RawRecord<'_>>>,
        Result<Vec<RawRecord<'_>>, String>,
    ) {
        let mut fast = Vec::new();
        let took = parse_rows(doc, &mut fast);
        let mut general = Vec::new();
        let g = parse_rows_general(doc, &mut general).map_err(|e| e.to_string());
        (took.then_some(fast), g.map(|()| general))
    }

    const PIECES: &[&[u8]] = &[
        b"<TONG_HOP>",
        b"</TONG_HOP>",
        b"<CHI_TIET_DVKT>",
        b"</CHI_TIET_DVKT>",
        b"<MA_LK>",
        b"</MA_LK>",
        b"<STT>",
        b"</STT>",
        b"<T_TONGCHI>",
        b"</T_TONGCHI>",
        b"<DSACH>",
        b"</DSACH>",
        b"<MA_LK/>",
        b"<TONG_HOP/>",
        b"<STT />",
        b"</STT >",
        b"<ns:MA_LK>",
        b"</ns:MA_LK>",
        b"<MA_LK a=\"x>y\">",
        b"<DSACH b='1'>",
        b"<?xml version=\"1.0\" encoding=\"utf-8\"?>",
        b"<!-- note -->",
        b"<![CDATA[a<b]]>",
        b"&amp;",
        b"&#7871;",
        b"&bad;",
        b" ",
        b"\n",
        b"12",
        b"Ng\xc6\xb0\xe1\xbb\x9di",
        b"\xff",
        b"<",
        b">",
        b"\"",
        b"<>",
        b"</>",
        b"<1A>",
    ];

    fn soup() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(0..PIECES.len(), 0..40)
            .prop_map(|ix| ix.into_iter().flat_map(|i| PIECES[i].to_vec()).collect())
    }

    /// Documents shaped like the real ones (a wrapper, rows of fields with
    /// short values), with now and then something the fast path refuses.
    fn shaped() -> impl Strategy<Value = Vec<u8>> {
        let value = prop::sample::select(vec![
            "",
            " ",
            "93117",
            "Thuốc 84",
            " 1.5 ",
            "K01",
            "BS9311",
            "x>y",
        ]);
        let field = (
            prop::sample::select(vec![
                "MA_LK", "STT", "MA_THUOC", "SO_LUONG", "DON_GIA", "OTHER",
            ]),
            value,
            0..10u8,
        );
        let row = (
            prop::sample::select(vec!["CHI_TIET_THUOC", "CHI_TIET_DVKT", "TONG_HOP"]),
            prop::collection::vec(field, 0..8),
        );
        (
            any::<bool>(),
            prop::collection::vec(row, 0..5),
            0..PIECES.len() * 4,
            0..64usize,
        )
            .prop_map(|(decl, rows, noise, at)| {
                let mut s = String::new();
                if decl {
                    s.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
                }
                s.push_str(
                    "<CHITIEU xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><DSACH>\n",
                );
                for (tag, fields) in rows {
                    s.push_str(&format!("<{tag}>"));
                    for (f, v, shape) in fields {
                        match shape {
                            0 => s.push_str(&format!("<{f}/>")),
                            1 => s.push_str(&format!("\n  <{f}>{v}</{f}>")),
                            2 => s.push_str(&format!("<{f}>{v}<SUB>9</SUB>{v}</{f}>")),
                            _ => s.push_str(&format!("<{f}>{v}</{f}>")),
                        }
                    }
                    s.push_str(&format!("</{tag}>"));
                }
                s.push_str("</DSACH></CHITIEU>");
                let mut b = s.into_bytes();
                // One in four documents gets a piece of the soup somewhere.
                if let Some(p) = PIECES.get(noise) {
                    let at = at.min(b.len());
                    b.splice(at..at, p.iter().copied());
                }
                b
            })
    }

    proptest! {
        #[test]
        fn what_the_fast_path_takes_it_reads_as_the_general_parser_does(
            doc in prop_oneof![soup(), shaped()]
        ) {
            let (fast, general) = both(&doc);
            if let Some(rows) = fast {
                prop_assert_eq!(Ok(rows), general, "{}", String::from_utf8_lossy(&doc));
            }
        }
    }

    #[test]
    fn documents_as_hospitals_write_them_take_the_fast_path() {
        let doc = "<?xml version=\"1.0\" encoding=\"utf-8\"?><CHITIEU_CHITIET_THUOC \
                   xmlns:xsi=\"x\"><DSACH_CHI_TIET_THUOC><CHI_TIET_THUOC><MA_LK>93117230605\
                   </MA_LK><STT>4</STT><TEN_THUOC>Thuốc 84</TEN_THUOC><MA_PTTT/></CHI_TIET_THUOC>\
                   <CHI_TIET_THUOC>\n <MA_LK> 93117230605 </MA_LK>\n</CHI_TIET_THUOC>\
                   </DSACH_CHI_TIET_THUOC></CHITIEU_CHITIET_THUOC>";
        let (fast, general) = both(doc.as_bytes());
        let rows = fast.expect("the fast path takes a plain document");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].get(crate::ingest::fields::lf::TEN_THUOC),
            Some("Thuốc 84")
        );
        assert_eq!(
            rows[1].get(crate::ingest::fields::lf::MA_LK),
            Some("93117230605")
        );
        assert_eq!(Ok(rows), general);
    }

    #[test]
    fn entities_comments_and_broken_tags_go_to_the_general_parser() {
        for doc in [
            "<TONG_HOP><HO_TEN>A &amp; B</HO_TEN></TONG_HOP>",
            "<TONG_HOP><!-- x --><MA_LK>1</MA_LK></TONG_HOP>",
            "<TONG_HOP><HO_TEN><![CDATA[A]]></HO_TEN></TONG_HOP>",
            "<TONG_HOP><MA_LK>1</STT></TONG_HOP>",
            "<TONG_HOP><MA_LK>1</MA_LK>",
            "<TONG_HOP><x:MA_LK>1</x:MA_LK></TONG_HOP>",
            " <?xml version=\"1.0\"?><TONG_HOP/>",
        ] {
            let (fast, _) = both(doc.as_bytes());
            assert!(fast.is_none(), "{doc}");
        }
        let (fast, _) = both(b"<TONG_HOP><HO_TEN>\xff</HO_TEN></TONG_HOP>");
        assert!(fast.is_none());
    }
}
