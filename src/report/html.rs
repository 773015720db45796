//! Self-contained HTML pages: inline CSS and a few lines of script for
//! sorting and filtering tables, no network, no external files.

use crate::detect::Lang;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

const STYLE: &str = "
body{font-family:'DejaVu Sans',Arial,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border:1px solid #ccc;padding:.35em .5em;vertical-align:top}
th{background:#f0f3f7;cursor:pointer;position:sticky;top:0}
td.num{text-align:right;white-space:nowrap}
tr.high td{background:#fff1f0}
.filters{display:flex;flex-wrap:wrap;gap:.6em;margin:.8em 0}
.filters label{font-size:.85em}
.chart svg{max-width:100%;height:auto}
.muted{color:#666;font-size:.85em}
";

const SCRIPT: &str = "
function sortTable(th){const t=th.closest('table'),i=[...th.parentNode.children].indexOf(th),
b=t.tBodies[0],rows=[...b.querySelectorAll('tr.row')],asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
rows.sort((x,y)=>{const a=x.children[i].dataset.v??x.children[i].innerText,c=y.children[i].dataset.v??y.children[i].innerText;
const na=parseFloat(a),nc=parseFloat(c);const r=(!isNaN(na)&&!isNaN(nc))?na-nc:a.localeCompare(c,'vi');return asc?r:-r});
rows.forEach(r=>{const id=r.dataset.id;const det=b.querySelector('tr.detail[data-id=\"'+id+'\"]');b.appendChild(r);if(det)b.appendChild(det);});}
function applyFilters(){const fs=[...document.querySelectorAll('[data-filter]')];
document.querySelectorAll('tr.row').forEach(r=>{let ok=true;fs.forEach(f=>{const v=f.value.trim().toLowerCase();
if(!v)return;const k=f.dataset.filter;const cell=(r.dataset[k]||'').toLowerCase();
if(f.dataset.min!==undefined){if(parseFloat(r.dataset[k]||'0')<parseFloat(v))ok=false;}else if(!cell.includes(v))ok=false;});
r.style.display=ok?'':'none';const det=document.querySelector('tr.detail[data-id=\"'+r.dataset.id+'\"]');if(det)det.style.display=ok?'':'none';});
const n=[...document.querySelectorAll('tr.row')].filter(r=>r.style.display!=='none').length;
const c=document.getElementById('shown');if(c)c.innerText=n;}
document.addEventListener('DOMContentLoaded',()=>{document.querySelectorAll('th[data-sort]').forEach(th=>th.addEventListener('click',()=>sortTable(th)));
document.querySelectorAll('[data-filter]').forEach(f=>f.addEventListener('input',applyFilters));applyFilters();
document.body.dataset.ready='1';});
";

/// A whole page around `body`.
pub fn page(title: &str, lang: Lang, body: &str) -> String {
    let l = match lang {
        Lang::Vi => "vi",
        Lang::En => "en",
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"{l}\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style><script>{SCRIPT}</script></head><body>{body}</body></html>\n",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
