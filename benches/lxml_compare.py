"""Parse Decision 130 envelopes with Python lxml (iterparse + base64 + inner
parse into dicts), for comparison with `bhyt ingest`. Optionally writes the
rows as CSV (visits.csv, lines.csv with Decision 130 column names), which is
how the CSV throughput input is made.

usage: lxml_compare.py INPUT [--csv OUTDIR]
"""
import base64
import csv
import os
import sys
import time

from lxml import etree

ROWS = {"TONG_HOP", "CHI_TIET_THUOC", "CHI_TIET_DVKT"}


def files(root):
    if os.path.isfile(root):
        yield root
        return
    for d, _, fs in os.walk(root):
        for f in sorted(fs):
            if f.endswith(".xml"):
                yield os.path.join(d, f)


def main():
    root = sys.argv[1]
    out = sys.argv[sys.argv.index("--csv") + 1] if "--csv" in sys.argv else None
    writers = {}
    if out:
        os.makedirs(out, exist_ok=True)
    nbytes = visits = lines = 0
    t = time.perf_counter()
    for path in files(root):
        nbytes += os.path.getsize(path)
        for _, el in etree.iterparse(path, tag="NOIDUNGFILE"):
            inner = etree.fromstring(base64.b64decode(el.text or ""))
            for row in inner.iter(*ROWS):
                rec = {c.tag: (c.text or "").strip() for c in row}
                if row.tag == "TONG_HOP":
                    visits += 1
                    table = "visits"
                else:
                    lines += 1
                    table = "lines"
                if out:
                    w = writers.get(table)
                    if w is None:
                        f = open(os.path.join(out, table + ".csv"), "w", newline="", encoding="utf-8")
                        cols = ["MA_LK", "STT", "MA_CSKCB", "MA_BN", "HO_TEN", "SO_CCCD", "NGAY_SINH", "GIOI_TINH", "DIA_CHI",
                                "MA_THE_BHYT", "MA_DKBD", "MA_BENH_CHINH", "MA_BENH_KT", "MA_DOITUONG_KCB", "NGAY_VAO", "NGAY_RA",
                                "SO_NGAY_DTRI", "KET_QUA_DTRI", "MA_LOAI_RV", "T_THUOC", "T_VTYT", "T_TONGCHI_BV", "T_TONGCHI_BH",
                                "T_BNTT", "T_BNCCT", "T_BHTT", "T_NGUONKHAC", "NAM_QT", "THANG_QT", "MA_LOAI_KCB", "MA_KHOA"] \
                            if table == "visits" else \
                               ["MA_LK", "STT", "MA_THUOC", "MA_DICH_VU", "MA_NHOM", "TEN_THUOC", "TEN_DICH_VU", "DON_VI_TINH",
                                "SO_LUONG", "DON_GIA_BV", "DON_GIA_BH", "TYLE_TT_DV", "TYLE_TT_BH", "THANH_TIEN_BV", "THANH_TIEN_BH",
                                "MA_KHOA", "MA_BAC_SI", "NGAY_YL"]
                        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
                        w.writeheader()
                        writers[table] = w
                    if table == "lines" and "DON_GIA" in rec:
                        rec["DON_GIA_BV"] = rec.pop("DON_GIA")
                    w.writerow(rec)
            el.clear()
    dt = time.perf_counter() - t
    print(f"lxml: {nbytes/1e6:.1f} MB, {visits} visits, {lines} lines in {dt:.2f} s: "
          f"{nbytes/1e6/dt:.1f} MB/s, {(visits+lines)/dt:,.0f} rows/s")


if __name__ == "__main__":
    main()
