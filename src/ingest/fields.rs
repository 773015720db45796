//! Source field vocabulary: the Decision 130 field names of XML1 (visits) and
//! XML2/XML3 (lines), with the Decision 4210 aliases folded in.
//!
//! Every reader (XML, CSV, Parquet) produces a [`RawRecord`]: one optional
//! string slot per field of this vocabulary. The TOML column mapping for
//! foreign CSV/Parquet extracts maps their columns onto these names, so a
//! single conversion and validation path serves every input format.

use std::borrow::Cow;

macro_rules! vocabulary {
    (
        $modname:ident, $lookup:ident, $names:ident;
        [$($field:ident),* $(,)?];
        aliases [$($alias:ident => $target:ident),* $(,)?]
    ) => {
        #[allow(non_upper_case_globals, dead_code)]
        pub mod $modname {
            vocabulary!(@consts 0usize; $($field,)*);
            /// Number of fields in this vocabulary.
            pub const N: usize = [$(stringify!($field)),*].len();
        }
        /// Canonical names, indexed like the field constants.
        pub const $names: [&str; $modname::N] = [$(stringify!($field)),*];
        /// Looks a source tag (canonical or alias) up in the vocabulary.
        ///
        /// Called once per XML element: see [`TagTable`].
        pub fn $lookup(tag: &[u8]) -> Option<usize> {
            static TABLE: std::sync::OnceLock<TagTable> = std::sync::OnceLock::new();
            TABLE
                .get_or_init(|| {
                    TagTable::new(&[
                        $((stringify!($field), $modname::$field),)*
                        $((stringify!($alias), $modname::$target),)*
                    ])
                })
                .get(tag)
        }
    };
    (@consts $i:expr; $head:ident, $($rest:ident,)*) => {
        pub const $head: usize = $i;
        vocabulary!(@consts $i + 1usize; $($rest,)*);
    };
    (@consts $i:expr;) => {};
}

/// Tag → index table. Called once per XML element (tens of millions a
/// run), so a tag is reduced to its length and two overlapping words — its
/// first and last 8 bytes (4 for shorter tags), which together hold every
/// byte of a tag up to 16 long — and found by one probe of an open
/// addressing table, with no string comparison. Longer tags (none in the
/// vocabulary) are compared whole.
pub struct TagTable {
    slots: Vec<Option<(TagKey, usize)>>,
    long: Vec<(&'static [u8], usize)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct TagKey {
    len: usize,
    head: u64,
    tail: u64,
}

impl TagKey {
    /// The key of a tag of at most 16 bytes.
    #[inline]
    fn of(tag: &[u8]) -> Option<TagKey> {
        let len = tag.len();
        let word8 = |at: usize| u64::from_le_bytes(tag[at..at + 8].try_into().expect("8 bytes"));
        let word4 =
            |at: usize| u32::from_le_bytes(tag[at..at + 4].try_into().expect("4 bytes")) as u64;
        let (head, tail) = match len {
            8..=16 => (word8(0), word8(len - 8)),
            4..=7 => (word4(0), word4(len - 4)),
            1..=3 => (tag.iter().fold(0u64, |w, b| (w << 8) | *b as u64), 0),
            _ => return None,
        };
        Some(TagKey { len, head, tail })
    }

    #[inline]
    fn slot(&self, mask: usize) -> usize {
        let h = self.head.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ self.tail.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            ^ self.len as u64;
        (h >> 40) as usize & mask
    }
}

impl TagTable {
    fn new(entries: &[(&'static str, usize)]) -> Self {
        let size = (entries.len() * 4).next_power_of_two();
        let mut t = TagTable {
            slots: vec![None; size],
            long: Vec::new(),
        };
        for (name, idx) in entries {
            match TagKey::of(name.as_bytes()) {
                Some(k) => {
                    let mut at = k.slot(size - 1);
                    while t.slots[at].is_some() {
                        at = (at + 1) & (size - 1);
                    }
                    t.slots[at] = Some((k, *idx));
                }
                None => t.long.push((name.as_bytes(), *idx)),
            }
        }
        t
    }

    #[inline]
    fn get(&self, tag: &[u8]) -> Option<usize> {
        let Some(k) = TagKey::of(tag) else {
            return self.long.iter().find(|(n, _)| *n == tag).map(|(_, i)| *i);
        };
        let mask = self.slots.len() - 1;
        let mut at = k.slot(mask);
        loop {
            match &self.slots[at] {
                Some((key, idx)) if *key == k => return Some(*idx),
                Some(_) => at = (at + 1) & mask,
                None => return None,
            }
        }
    }
}

vocabulary!(
    vf, visit_field, VISIT_FIELDS;
    [
        MA_LK, STT, MA_BN, HO_TEN, SO_CCCD, NGAY_SINH, GIOI_TINH, DIA_CHI, DIEN_THOAI,
        MA_THE_BHYT, MA_DKBD, MA_BENH_CHINH, MA_BENH_KT, MA_DOITUONG_KCB, NGAY_VAO,
        NGAY_RA, SO_NGAY_DTRI, KET_QUA_DTRI, MA_LOAI_RV, T_THUOC, T_VTYT, T_TONGCHI_BV,
        T_TONGCHI_BH, T_BHTT, T_BNCCT, T_BNTT, T_NGUONKHAC, NAM_QT, THANG_QT, MA_LOAI_KCB,
        MA_KHOA, MA_CSKCB, CAN_NANG,
    ];
    aliases [
        MA_THE => MA_THE_BHYT,
        MA_BENH => MA_BENH_CHINH,
        MA_BENHKHAC => MA_BENH_KT,
        MA_LYDO_VVIEN => MA_DOITUONG_KCB,
        T_TONGCHI => T_TONGCHI_BV,
    ]
);

vocabulary!(
    lf, line_field, LINE_FIELDS;
    [
        MA_LK, STT, MA_CSKCB, MA_THUOC, MA_DICH_VU, MA_VAT_TU, MA_NHOM, TEN_THUOC,
        TEN_DICH_VU, TEN_VAT_TU, DON_VI_TINH, PHAM_VI, SO_LUONG, DON_GIA_BV, DON_GIA_BH,
        TYLE_TT_DV, TYLE_TT_BH, THANH_TIEN_BV, THANH_TIEN_BH, MUC_HUONG, T_NGUONKHAC,
        T_BNTT, T_BNCCT, T_BHTT, MA_KHOA, MA_GIUONG, MA_BAC_SI, MA_BENH, NGAY_YL,
        NGAY_TH_YL, MA_PTTT,
    ];
    aliases [
        DON_GIA => DON_GIA_BV,
        THANH_TIEN => THANH_TIEN_BV,
        TYLE_TT => TYLE_TT_DV,
    ]
);

/// Which canonical table a source row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// XML1 `TONG_HOP`: one visit.
    Visit,
    /// XML2 `CHI_TIET_THUOC`: one drug line.
    Drug,
    /// XML3 `CHI_TIET_DVKT`: one service, supply or bed-day line.
    Service,
}

impl RowKind {
    /// Recognises a row element by its own name, wherever it sits.
    pub fn from_element(name: &[u8]) -> Option<RowKind> {
        match name {
            b"TONG_HOP" => Some(RowKind::Visit),
            b"CHI_TIET_THUOC" => Some(RowKind::Drug),
            b"CHI_TIET_DVKT" => Some(RowKind::Service),
            _ => None,
        }
    }

    pub fn field_index(self, tag: &[u8]) -> Option<usize> {
        match self {
            RowKind::Visit => visit_field(tag),
            RowKind::Drug | RowKind::Service => line_field(tag),
        }
    }

    pub fn width(self) -> usize {
        match self {
            RowKind::Visit => vf::N,
            RowKind::Drug | RowKind::Service => lf::N,
        }
    }

    /// The Decision 130 table name, used in quarantine records.
    pub fn table_name(self) -> &'static str {
        match self {
            RowKind::Visit => "XML1",
            RowKind::Drug => "XML2",
            RowKind::Service => "XML3",
        }
    }
}

/// One source row before conversion: a value slot per vocabulary field.
/// Values are trimmed; empty values are absent.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord<'a> {
    pub kind: RowKind,
    pub vals: Vec<Option<Cow<'a, str>>>,
    /// Position in the source for error messages (byte offset or line number).
    pub position: u64,
}

impl<'a> RawRecord<'a> {
    pub fn new(kind: RowKind, position: u64) -> Self {
        RawRecord {
            kind,
            vals: vec![None; kind.width()],
            position,
        }
    }

    #[inline]
    pub fn get(&self, idx: usize) -> Option<&str> {
        self.vals[idx].as_deref()
    }

    /// Stores a value, trimming whitespace; an empty value stays absent.
    #[inline]
    pub fn set(&mut self, idx: usize, v: Cow<'a, str>) {
        let trimmed = v.trim();
        if trimmed.is_empty() {
            return;
        }
        let v = if trimmed.len() == v.len() {
            v
        } else {
            match v {
                Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
                Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
            }
        };
        self.vals[idx] = Some(v);
    }

    pub fn into_owned(self) -> RawRecord<'static> {
        RawRecord {
            kind: self.kind,
            vals: self
                .vals
                .into_iter()
                .map(|v| v.map(|c| Cow::Owned(c.into_owned())))
                .collect(),
            position: self.position,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_fold_onto_canonical_fields() {
        assert_eq!(visit_field(b"MA_THE"), Some(vf::MA_THE_BHYT));
        assert_eq!(visit_field(b"MA_THE_BHYT"), Some(vf::MA_THE_BHYT));
        assert_eq!(visit_field(b"T_TONGCHI"), Some(vf::T_TONGCHI_BV));
        assert_eq!(line_field(b"DON_GIA"), Some(lf::DON_GIA_BV));
        assert_eq!(line_field(b"NOPE"), None);
        assert_eq!(VISIT_FIELDS[vf::MA_CSKCB], "MA_CSKCB");
        assert_eq!(LINE_FIELDS[lf::MA_PTTT], "MA_PTTT");
    }

    #[test]
    fn the_tag_table_finds_exactly_the_vocabulary() {
        let names: Vec<&str> = VISIT_FIELDS.iter().chain(&LINE_FIELDS).copied().collect();
        let naive = |t: &[u8]| VISIT_FIELDS.iter().position(|n| n.as_bytes() == t);
        let mut probes: Vec<Vec<u8>> = vec![b"".to_vec(), b"A".to_vec(), vec![b'M'; 40]];
        for n in &names {
            let b = n.as_bytes();
            probes.push(b.to_vec());
            probes.push(b[..b.len() - 1].to_vec());
            probes.push([b, b"X"].concat());
            for i in 0..b.len() {
                let mut c = b.to_vec();
                c[i] ^= 0x20;
                probes.push(c);
            }
        }
        for p in &probes {
            let alias = matches!(
                p.as_slice(),
                b"MA_THE" | b"MA_BENH" | b"MA_BENHKHAC" | b"MA_LYDO_VVIEN" | b"T_TONGCHI"
            );
            if !alias {
                assert_eq!(visit_field(p), naive(p), "{}", String::from_utf8_lossy(p));
            }
        }
        for (i, n) in LINE_FIELDS.iter().enumerate() {
            assert_eq!(line_field(n.as_bytes()), Some(i));
        }
    }

    #[test]
    fn empty_values_stay_absent() {
        let mut r = RawRecord::new(RowKind::Visit, 0);
        r.set(vf::MA_BENH_KT, Cow::Borrowed("\n  "));
        assert!(r.get(vf::MA_BENH_KT).is_none());
        r.set(vf::MA_LK, Cow::Borrowed(" X1 "));
        assert_eq!(r.get(vf::MA_LK), Some("X1"));
    }
}
