//! The status page of the running demo in a real browser (Debian's headless `chromium`, which
//! scripts/setup-test-deps installs): at 1280 and 390 px wide nothing overflows horizontally
//! (wide tables scroll inside their own box), every piece of text meets WCAG AA contrast against
//! what is behind it, and screenshots at both widths are kept for people to look at.
//!
//! Chromium's windows are at least 500 px wide, so the page is laid out in an iframe of the
//! exact width inside a harness page; the harness's script measures the iframe's document (the
//! page itself has no script) and `--dump-dom` hands the result back.

use crate::ops_common as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::daemon_harness::Fixture;

const WIDTHS: [u32; 2] = [1280, 390];
/// Tall enough that a screenshot shows the demo page whole.
const HEIGHT: u32 = 2600;

/// Measures the framed page once it has loaded: horizontal overflow (the document wider than
/// its viewport, and each element that sticks out of it without a scrolling box of its own) and
/// the contrast of every element's own text against the first opaque background behind it.
const MEASURE: &str = r#"
function rgb(s){const m=s.match(/[\d.]+/g).map(Number);return {r:m[0],g:m[1],b:m[2],a:m.length>3?m[3]:1};}
function lum(c){const f=v=>{v/=255;return v<=0.03928?v/12.92:Math.pow((v+0.055)/1.055,2.4);};return 0.2126*f(c.r)+0.7152*f(c.g)+0.0722*f(c.b);}
function ratio(a,b){const x=lum(a),y=lum(b);return (Math.max(x,y)+0.05)/(Math.min(x,y)+0.05);}
function behind(w,el){for(let e=el;e;e=e.parentElement){const c=rgb(w.getComputedStyle(e).backgroundColor);if(c.a>0.99)return c;}return {r:255,g:255,b:255,a:1};}
function scrolls(w,el){for(let e=el.parentElement;e&&e!==el.ownerDocument.body;e=e.parentElement){const o=w.getComputedStyle(e).overflowX;if(o==='auto'||o==='scroll')return true;}return false;}
function describe(el){return el.tagName.toLowerCase()+(el.className?'.'+String(el.className).replace(/ /g,'.'):'')+' "'+(el.textContent||'').trim().slice(0,40)+'"';}
window.addEventListener('load',()=>{
  const f=document.getElementById('page');const w=f.contentWindow;const d=f.contentDocument;
  const width=d.documentElement.clientWidth;const out={width,scrollWidth:d.documentElement.scrollWidth,sticking_out:[],low_contrast:[],texts:0};
  for(const el of d.body.querySelectorAll('*')){
    const r=el.getBoundingClientRect();
    if(r.width>0&&r.right>width+0.5&&!scrolls(w,el))out.sticking_out.push(describe(el)+' right='+Math.round(r.right));
    const own=[...el.childNodes].some(n=>n.nodeType===3&&n.textContent.trim());
    if(!own||r.width===0)continue;
    out.texts++;
    const k=ratio(rgb(w.getComputedStyle(el).color),behind(w,el));
    if(k<4.5)out.low_contrast.push(describe(el)+' contrast='+k.toFixed(2));
  }
  const p=document.createElement('pre');p.id='measured';p.textContent=JSON.stringify(out);document.body.appendChild(p);
});
"#;

/// A page that frames `html` at `width` px; with `measure`, it also runs [`MEASURE`].
fn harness(html: &str, width: u32, measure: bool) -> String {
    let framed = html.replace('&', "&amp;").replace('"', "&quot;");
    let script = if measure { format!("<script>{MEASURE}</script>") } else { String::new() };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"></head><body style=\"margin:0;background:#fff\">\
         <iframe id=\"page\" style=\"border:0;display:block;width:{width}px;height:{HEIGHT}px\" srcdoc=\"{framed}\"></iframe>\
         {script}</body></html>"
    )
}

/// Runs headless Chromium on `page` with a window just wider than `width`.
fn chromium(page: &Path, width: u32, mode: &str) -> String {
    let out = common::run_ok(
        Command::new(common::tool("chromium"))
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
            .arg(format!("--window-size={},{HEIGHT}", width.max(500)))
            .arg(mode)
            .arg(format!("file://{}", page.display())),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The demo's status page as the daemon serves it at each of `paths`.
fn demo_pages(paths: &[&str]) -> Vec<String> {
    let fixture = Fixture::demo();
    let mut daemon = fixture.start();
    daemon.wait_ready();
    paths
        .iter()
        .map(|path| {
            let page = daemon.get(path);
            assert_eq!(page.status, 200, "GET {path}: {}", page.body);
            assert!(page.body.contains("<section id=\"cluster-"), "{path} shows no cluster:\n{}", page.body);
            page.body
        })
        .collect()
}

fn measure(html: &str, width: u32, dir: &Path) -> serde_json::Value {
    let page = dir.join(format!("measure-{width}.html"));
    std::fs::write(&page, harness(html, width, true)).expect("write the harness page");
    let dom = chromium(&page, width, "--dump-dom");
    let start = dom.find("<pre id=\"measured\">").unwrap_or_else(|| panic!("Chromium measured nothing:\n{dom}"));
    let json = &dom[start + "<pre id=\"measured\">".len()..];
    let json =
        json[..json.find("</pre>").expect("the end of the measurement")].replace("&quot;", "\"").replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("the measurement is not JSON ({e}): {json}"))
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("page-screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshots dir");
    dir
}

#[test]
fn the_demo_page_fits_1280_and_390_pixels_without_horizontal_overflow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = ["/", "/?status=drift&severity=high"];
    for (path, html) in paths.iter().zip(demo_pages(&paths)) {
        for width in WIDTHS {
            let m = measure(&html, width, dir.path());
            assert_eq!(m["width"], width, "{path} was laid out {} wide, not {width}", m["width"]);
            assert!(
                m["scrollWidth"].as_u64() <= m["width"].as_u64()
                    && m["sticking_out"].as_array().is_some_and(Vec::is_empty),
                "{path} at {width} px overflows horizontally: scrollWidth {} > {width}; elements sticking out: {:#}",
                m["scrollWidth"],
                m["sticking_out"]
            );
        }
    }
}

#[test]
fn every_text_on_the_demo_page_meets_wcag_aa_contrast() {
    let dir = tempfile::tempdir().expect("temp dir");
    let html = demo_pages(&["/"]).remove(0);
    let m = measure(&html, 1280, dir.path());
    assert!(m["texts"].as_u64().unwrap_or(0) > 50, "too few texts measured to mean anything: {m}");
    assert!(
        m["low_contrast"].as_array().is_some_and(Vec::is_empty),
        "text below a contrast of 4.5: {:#}",
        m["low_contrast"]
    );
}

#[test]
fn screenshots_at_1280_and_390_pixels_are_taken_at_those_widths() {
    let html = demo_pages(&["/"]).remove(0);
    let dir = screenshots_dir();
    for width in WIDTHS {
        let page = dir.join(format!("status-page-{width}.html"));
        std::fs::write(&page, harness(&html, width, false)).expect("write the harness page");
        let png = dir.join(format!("status-page-{width}.png"));
        let _ = std::fs::remove_file(&png);
        chromium(&page, width, &format!("--screenshot={}", png.display()));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", png.display()));
        assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", png.display());
        let shot_width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        assert_eq!(shot_width, width.max(500), "the screenshot's width");
        println!("screenshot: {}", png.display());
    }
}
