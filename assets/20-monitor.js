/* Browser-side pieces of the monitor: theme, local times, severity badges, critical alerts.
   Producer text is only ever set as text (React children, textContent, Notification body). */

(function () {
    "use strict";

    // Apply the remembered theme before Dash renders, so a dark page does not flash white.
    try {
        var saved = JSON.parse(window.localStorage.getItem("_dash_persistence.theme-switch.value.true"));
        if (saved && saved[0] === true) {
            document.documentElement.setAttribute("data-bs-theme", "dark");
            document.documentElement.setAttribute("data-ag-theme-mode", "dark");
        }
    } catch (e) { /* no storage: light it is */ }

    function pad(n) { return (n < 10 ? "0" : "") + n; }

    var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});
    // ISO-8601 UTC from the server -> "YYYY-MM-DD HH:MM:SS" in the browser's time zone.
    dagfuncs.localTime = function (iso) {
        if (!iso) { return ""; }
        var d = new Date(iso);
        if (isNaN(d.getTime())) { return String(iso); }
        return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
            pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    };

    var SEVERITY_CLASS = {critical: "text-bg-danger", error: "text-bg-warning",
                          warning: "text-bg-info", info: "text-bg-secondary",
                          debug: "text-bg-secondary"};
    var dagcomponentfuncs = (window.dashAgGridComponentFunctions =
        window.dashAgGridComponentFunctions || {});
    dagcomponentfuncs.SeverityBadge = function (props) {
        var cls = SEVERITY_CLASS[props.value] || "text-bg-secondary";
        return React.createElement("span", {className: "badge sev-badge " + cls},
                                   String(props.value || ""));
    };

    // The category, with a "test" badge for test traffic (listed, but counted nowhere).
    dagcomponentfuncs.CategoryCell = function (props) {
        var text = String(props.value || "");
        if (!(props.data && props.data.test)) { return text; }
        return React.createElement("span", null, text + " ",
            React.createElement("span", {className: "badge text-bg-info test-badge",
                                         title: "Test traffic: no alert, no health change"},
                                "test"));
    };

    var audio = null;
    function beep() {
        var Ctx = window.AudioContext || window.webkitAudioContext;
        if (!Ctx) { return; }
        audio = audio || new Ctx();
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.type = "square";
        osc.frequency.value = 880;
        gain.gain.value = 0.05;
        osc.connect(gain);
        gain.connect(audio.destination);
        osc.start();
        osc.stop(audio.currentTime + 0.35);
    }

    // What `make()` returns, once the current frame is on screen: a frame callback runs
    // just before the paint, a timeout after it.
    function afterPaint(make) {
        return new Promise(function (resolve) {
            window.requestAnimationFrame(function () {
                window.setTimeout(function () { resolve(make()); }, 0);
            });
        });
    }

    window.dash_clientside = window.dash_clientside || {};
    window.dash_clientside.monitor = {
        setTheme: function (dark, shown) {
            var theme = dark ? "dark" : "light";
            document.documentElement.setAttribute("data-bs-theme", theme);
            document.documentElement.setAttribute("data-ag-theme-mode", theme);
            // The server draws charts into the page it sends (dashboard/factory.py reads
            // this), so they come in the right theme with no second request.
            document.cookie = "tsem_theme=" + theme + "; path=/; max-age=31536000; SameSite=Strict";
            // Unchanged (the page was drawn in it): no redraw of the charts on load.
            return theme === shown ? window.dash_clientside.no_update : theme;
        },
        askNotificationPermission: function (on) {
            if (on && window.Notification && Notification.permission === "default") {
                Notification.requestPermission();
            }
            return window.dash_clientside.no_update;
        },
        alertCritical: function (signal, sound, browser) {
            if (!signal) { return window.dash_clientside.no_update; }
            if (sound) {
                try { beep(); } catch (e) { /* autoplay refused */ }
            }
            if (browser && window.Notification && Notification.permission === "granted") {
                // A Notification body is plain text: nothing in it is interpreted.
                new Notification("TickStock: critical error", {body: String(signal.text || ""),
                                                               tag: "tickstock-critical"});
            }
            return window.dash_clientside.no_update;
        },
        // datetime-local values (browser time) -> ISO UTC for the server.
        toUtcRange: function (from, to) {
            function iso(v) {
                if (!v) { return null; }
                var d = new Date(v);
                return isNaN(d.getTime()) ? null : d.toISOString();
            }
            return {from: iso(from), to: iso(to)};
        },
        // Trends: the plotly charts take the place of the first-paint bars
        // (dashboard/quick_chart.py) once those have been painted, so plotly's first run
        // and draw come after the page shows its counts rather than before.
        upgradeCharts: function (data) {
            var no = window.dash_clientside.no_update;
            var figures = (data && data.figures) || {};
            var charts = (data && data.charts) || [];
            if (!charts.length || !figures[charts[0]]) {
                return charts.map(function () { return no; });
            }
            return afterPaint(function () {
                return charts.map(function (id) {
                    return {type: "Graph", namespace: "dash_core_components",
                            props: {id: id, figure: figures[id], config: data.config}};
                });
            });
        },
        // groups.page.open_group_on_title_click: a title opens its group (the link of
        // groups.page.group_href), nothing else does.
        openGroup: function (clicked) {
            if (!clicked || clicked.colId !== "title" || !clicked.rowId) {
                return window.dash_clientside.no_update;
            }
            return "/groups/" + encodeURIComponent(clicked.rowId);
        },
        // Components handed over in a store (the groups grid), mounted once the page's
        // first paint, which shows the same data in plain elements, is on screen.
        mountAfterPaint: function (components) {
            if (!components) {
                return window.dash_clientside.no_update;
            }
            return afterPaint(function () { return components; });
        }
    };
}());
