// Evaluates every PromQL expression of every dashboard panel and every
// alert rule through a running Prometheus's HTTP API (tests/deploy/
// dead_panels.sh starts it, scraping a running fleet).
//
//   node check_queries.mjs PROM_URL METRIC_NAMES_FILE DASHBOARD.json... ALERTS.yaml
//
// - every expression must parse and evaluate (status "success");
// - every dashboard panel must return at least one series (a panel with
//   several queries: at least one of them);
// - every metric name an expression uses must be one of METRIC_NAMES_FILE
//   (the names with a TYPE line on some worker's /metrics, with _bucket,
//   _sum and _count for histograms), except `up` (made by Prometheus for
//   every target) and the kube-state-metrics series named in ALLOWED_EXTERNAL
//   (alert rules only);
// - every alert rule has a runbook annotation;
// - dashboard variables: `datasource`, `worker` and `instance` must exist;
//   query variables are resolved like Grafana does (label_values against
//   the same Prometheus) and $__rate_interval, $__interval, $__range
//   replaced by durations that fit the test's 1 s scrapes.
// Prints one line per failure and a closing "N passed, N failed" line.
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const YAML = require(process.env.HERALD_NODE_MODULES + "/yaml");

const [prom, namesFile, ...files] = process.argv.slice(2);
const names = new Set(fs.readFileSync(namesFile, "utf8").split("\n").filter(Boolean));
const ALLOWED_EXTERNAL = new Set(["up", "kube_pod_status_ready"]);
const FUNCS = new Set(("abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min " +
    "count_over_time day_of_month day_of_week day_of_year days_in_month delta deriv exp floor " +
    "histogram_quantile histogram_count histogram_sum histogram_fraction holt_winters hour idelta increase irate " +
    "label_join label_replace last_over_time ln log10 log2 max_over_time min_over_time minute month " +
    "predict_linear present_over_time quantile_over_time rate resets round scalar sgn sort sort_desc sqrt " +
    "stddev_over_time stdvar_over_time sum_over_time time timestamp vector year " +
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile").split(" "));
const KEYWORDS = new Set("by without on ignoring group_left group_right and or unless bool offset inf nan".split(" "));

let passed = 0, failed = 0;
const fail = (what, msg) => { failed++; console.log(`FAIL ${what}: ${msg}`); };
const pass = () => { passed++; };

// Metric names in an expression: identifiers outside {...}, [...], strings,
// by/on(...) label lists, that are not functions or keywords.
function metricNames(expr) {
    let s = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/'(?:[^'\\]|\\.)*'/g, "''");
    s = s.replace(/\{[^}]*\}/g, " ").replace(/\[[^\]]*\]/g, " ");
    s = s.replace(/(?<![\w.])\d[\w.]*/g, " "); // numbers and durations (1h, 0.99, 1e3)
    s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
    const out = new Set();
    for (const m of s.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
        const [, id, call] = m;
        if (call || FUNCS.has(id) || KEYWORDS.has(id.toLowerCase())) continue;
        if (/^[0-9]/.test(id)) continue;
        out.add(id);
    }
    return [...out];
}

async function api(path, params) {
    const body = new URLSearchParams(params);
    const r = await fetch(prom + path, { method: "POST", body });
    return r.json();
}

async function query(expr) {
    return api("/api/v1/query", { query: expr });
}

async function resolveVars(dash, where) {
    const vars = {};
    const list = (dash.templating && dash.templating.list) || [];
    for (const want of ["datasource", "worker", "instance"])
        if (!list.some(v => v.name === want)) fail(where, `no '${want}' variable`);
        else pass();
    for (const v of list) {
        if (v.type === "datasource") { vars[v.name] = "prometheus"; continue; }
        const cur = v.current && v.current.value;
        const isAll = Array.isArray(cur) ? cur.includes("$__all") : cur === "$__all";
        if (cur !== undefined && cur !== null && cur !== "" && !isAll) {
            vars[v.name] = Array.isArray(cur) ? cur.join("|") : String(cur);
            continue;
        }
        if (isAll && v.allValue) { vars[v.name] = v.allValue; continue; }
        // label_values(metric{...}, label) or label_values(label)
        const qtext = subst(typeof v.query === "string" ? v.query : v.query.query, vars);
        const m = qtext.match(/^label_values\((?:(.*),\s*)?([a-zA-Z_]+)\)$/);
        if (!m) { fail(where, `variable ${v.name}: cannot resolve ${qtext}`); continue; }
        const r = await api(`/api/v1/label/${m[2]}/values`, m[1] ? { "match[]": m[1] } : {});
        if (r.status !== "success" || !r.data.length) fail(where, `variable ${v.name}: ${qtext} has no values`);
        else pass();
        vars[v.name] = (r.data || []).join("|") || ".*";
    }
    return vars;
}

function subst(expr, vars) {
    let s = expr.replace(/\$__rate_interval|\$\{__rate_interval\}/g, "1m")
        .replace(/\$__interval|\$\{__interval\}/g, "15s")
        .replace(/\$__range|\$\{__range\}/g, "5m");
    s = s.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (all, a, b, c) => {
        const n = a || b || c;
        return n in vars ? vars[n] : all;
    });
    return s;
}

function checkNames(where, expr, allowExternal) {
    for (const n of metricNames(expr)) {
        if (names.has(n) || n === "up" || (allowExternal && ALLOWED_EXTERNAL.has(n))) pass();
        else fail(where, `metric ${n} is on no worker's /metrics`);
    }
}

function panelsOf(dash) {
    const out = [];
    const walk = ps => { for (const p of ps || []) { if (p.panels) walk(p.panels); if (p.targets) out.push(p); } };
    walk(dash.panels);
    return out;
}

for (const file of files) {
    const base = file.split("/").pop();
    if (file.endsWith(".json")) {
        const dash = JSON.parse(fs.readFileSync(file, "utf8"));
        const vars = await resolveVars(dash, base);
        for (const p of panelsOf(dash)) {
            const where = `${base} "${p.title}"`;
            let series = 0, exprs = 0;
            for (const tg of p.targets) {
                if (!tg.expr) continue;
                exprs++;
                checkNames(where, tg.expr, false);
                const expr = subst(tg.expr, vars);
                if (/\$\w/.test(expr)) { fail(where, `unresolved variable in ${expr}`); continue; }
                const r = await query(expr);
                if (r.status !== "success") { fail(where, `${expr}: ${r.error}`); continue; }
                pass();
                const d = r.data;
                series += d.resultType === "vector" || d.resultType === "matrix" ? d.result.length : 1;
            }
            if (!exprs) { fail(where, "no PromQL expression"); continue; }
            if (series > 0) pass(); else fail(where, "returns no series (dead panel)");
        }
    } else {
        const doc = YAML.parse(fs.readFileSync(file, "utf8"));
        for (const g of doc.groups) {
            for (const rule of g.rules) {
                const where = `${base} ${rule.alert || rule.record}`;
                const expr = String(rule.expr);
                checkNames(where, expr, true);
                const r = await query(expr);
                if (r.status !== "success") fail(where, `${expr}: ${r.error}`); else pass();
                if (rule.alert) {
                    if (rule.annotations && rule.annotations.runbook && rule.annotations.summary) pass();
                    else fail(where, "no runbook or summary annotation");
                }
            }
        }
    }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
