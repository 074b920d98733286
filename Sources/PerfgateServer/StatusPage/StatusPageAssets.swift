extension StatusPageHTML {
    /// Light and dark, readable from a phone to a laptop; no fonts or images fetched.
    static let style = """
        :root{--bg:#fafafa;--fg:#1d2125;--muted:#5f6b76;--card:#fff;--line:#e1e4e8;--frontend:#8e6bd6;--backend:#2f7ed8;--streaming:#27a376;--custom:#c28a1e;--ok:#27a376;--warn:#c28a1e;--bad:#d1453b;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:15px;line-height:1.45}
        @media (prefers-color-scheme:dark){:root{--bg:#111417;--fg:#e6e9ec;--muted:#98a2ad;--card:#1a1e22;--line:#2c3238;--frontend:#a98ae6;--backend:#5a9cf0;--streaming:#3fc08f;--custom:#e0a93c;--ok:#3fc08f;--warn:#e0a93c;--bad:#f0675d}}
        *{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg)}
        header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.5rem 1.5rem;padding:1rem 1.25rem;border-bottom:1px solid var(--line)}
        h1{font-size:1.25rem;margin:0}h2{font-size:1.05rem;margin:0 0 .75rem}
        nav a{display:inline-block;padding:.15rem .6rem;border:1px solid var(--line);border-radius:1rem;color:var(--fg);text-decoration:none;margin-right:.25rem}
        nav a[aria-current]{background:var(--fg);color:var(--bg);border-color:var(--fg)}
        main{display:grid;gap:1rem;padding:1rem 1.25rem;max-width:1400px;margin:0 auto}
        section{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:1rem;min-width:0}
        .updated,.muted,.empty,footer{color:var(--muted)}.updated{margin:0}
        footer{padding:1rem 1.25rem;font-size:.85rem}a{color:var(--backend)}
        .legend{display:flex;flex-wrap:wrap;gap:.25rem 1rem;font-size:.85rem;color:var(--muted);margin-bottom:.5rem}
        .legend i{display:inline-block;width:.8rem;height:.8rem;border-radius:.15rem;margin-right:.3rem;vertical-align:-.1rem}
        .stage-row{margin:.6rem 0}.endpoint{font-family:ui-monospace,monospace;font-size:.9rem;margin-bottom:.2rem;overflow-wrap:anywhere}
        .bar{display:flex;height:1.1rem;border-radius:.25rem;overflow:hidden;background:var(--line)}
        .seg{display:block;height:100%;min-width:1px}.seg-frontend{background:var(--frontend)}.seg-backend{background:var(--backend)}.seg-streaming{background:var(--streaming)}.seg-custom{background:var(--custom)}
        .shares{font-size:.85rem;color:var(--muted);margin-top:.2rem}.shares b{color:var(--fg);font-weight:600}
        .scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}
        th,td{padding:.35rem .5rem;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}th{color:var(--muted);font-weight:600}
        .num{text-align:right;font-variant-numeric:tabular-nums}.ok{color:var(--fg)}.warn{color:var(--warn)}.bad{color:var(--bad);font-weight:600}
        tr.degrading td:first-child{box-shadow:inset 3px 0 var(--bad)}
        .spark{width:100px;height:28px;display:block}.spark polyline{fill:none;stroke:var(--backend);stroke-width:1.5;vector-effect:non-scaling-stroke}.spark circle{fill:var(--backend)}
        .ranking{margin:0;padding-left:1.5rem}.ranking li{display:grid;grid-template-columns:minmax(8rem,14rem) 1fr 5rem;gap:.75rem;align-items:center;margin:.25rem 0}
        .ranking b{text-align:right;font-variant-numeric:tabular-nums}.who{overflow-wrap:anywhere}
        .meter{height:.6rem;background:var(--line);border-radius:.3rem;overflow:hidden}.meter i{display:block;height:100%}
        .meter i.ok{background:var(--ok)}.meter i.warn{background:var(--warn)}.meter i.bad{background:var(--bad)}
        dl{display:grid;grid-template-columns:repeat(auto-fill,minmax(12rem,1fr));gap:.75rem;margin:0}dt{color:var(--muted);font-size:.85rem}dd{margin:0;font-weight:600;overflow-wrap:anywhere}
        @media (min-width:1000px){main{grid-template-columns:1fr 1fr}#latency{grid-column:1/-1}.updated{grid-column:1/-1}}
        """

    /// Replaces the main part every 10 seconds with a fresh render of the same window.
    static let script = """
        (function(){var main=document.getElementById("status");if(!main||!window.fetch)return;
        function refresh(){var q=location.search?location.search+"&fragment=1":"?fragment=1";
        fetch(location.pathname+q,{credentials:"same-origin",cache:"no-store"}).then(function(r){return r.ok?r.text():null})
        .then(function(html){if(html!==null)main.innerHTML=html}).catch(function(){})}
        setInterval(refresh,10000)})();
        """
}
