// Builds the Grafana dashboards of dashboards/ from the panel lists below:
//
//   node dashboards/src/build.mjs          (writes dashboards/herald-*.json)
//   node dashboards/src/build.mjs --check  (exit 1 if a file is out of date)
//
// Every dashboard has the variables `datasource` (a Prometheus data
// source), `worker` (label_values(herald_build_info, worker); the fleet
// overview selects all, a worker's dashboard its own worker) and `instance`.
// Every expression filters on worker=~"$worker" and instance=~"$instance",
// so a dashboard also works for a renamed or second deployment of a worker
// (e.g. the SQS-fed herald-fanout). Metric names are the ones the workers
// export (SPEC.md section 6 and each workers/*/README.md); the test
// tests/deploy/dead_panels.sh evaluates every expression against a real
// Prometheus scraping a running fleet.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, "..");
const S = 'worker=~"$worker",instance=~"$instance"';
const RI = "$__rate_interval";
const rate = (m, extra = "", by = "") =>
    `sum${by ? ` by (${by})` : ""} (rate(${m}{${S}${extra ? "," + extra : ""}}[${RI}]))`;
const q = (le, m, by) =>
    `histogram_quantile(${le}, sum by (${by ? by + ", " : ""}le) (rate(${m}_bucket{${S}}[${RI}])))`;

// ---- panel builders -------------------------------------------------------
const t = (expr, legend, extra = {}) => ({ expr, legendFormat: legend, ...extra });
const panel = (type, title, targets, o = {}) => ({ type, title, targets, ...o });
const ts = (title, targets, o) => panel("timeseries", title, targets, o);
const stat = (title, targets, o) => panel("stat", title, targets, o);
const row = (title) => ({ type: "row", title });

// The part every worker's dashboard shares: throughput, outcomes, latency,
// lag by partition, own-state and source health (RED + saturation).
const common = () => [
    row("Throughput, errors, duration"),
    ts("Events consumed /s by topic", [t(rate("herald_events_consumed_total", "", "topic"), "{{topic}}")], { unit: "ops" }),
    ts("Processed /s by outcome", [t(rate("herald_events_processed_total", "", "outcome"), "{{outcome}}")], { unit: "ops",
        description: "ok, duplicate, filtered, retried (to herald.retry), dead_lettered (to herald.dlq)" }),
    ts("Processing latency p50 / p99", [
        t(q(0.5, "herald_event_processing_seconds"), "p50"),
        t(q(0.99, "herald_event_processing_seconds"), "p99")], { unit: "s" }),
    ts("Consumer lag by topic and partition", [
        t(`sum by (topic, partition) (herald_consumer_lag{${S}})`, "{{topic}}/{{partition}}")], { unit: "short",
        description: "Messages behind the high-water mark, from librdkafka statistics (HERALD_KAFKA_STATS_INTERVAL_MS)." }),
    ts("Redis errors, batch pauses, source errors /s", [
        t(rate("herald_redis_errors_total"), "redis errors"),
        t(rate("herald_batch_pauses_total"), "batch pauses"),
        t(rate("herald_source_errors_total"), "source errors")], { unit: "ops" }),
    ts("Rebalances", [t(`sum by (instance) (increase(herald_source_rebalances_total{${S}}[${RI}]))`, "{{instance}}")], { unit: "short" }),
];

const circuits = (filter) => ts("Circuit state by destination (0 closed, 1 half-open, 2 open)", [
    t(`max by (destination) (herald_guard_circuit_state{${S}${filter ? "," + filter : ""}})`, "{{destination}}")],
    { unit: "short", min: 0, max: 2, description: "Fleet-wide shared circuit in Redis, as this worker sees it: aggregate with max, never sum." });

const instancesTable = () => panel("table", "Instances", [
    t(`herald_build_info{${S}}`, "", { format: "table", instant: true })]);

const dashboards = {
    "herald-fleet": {
        title: "Herald / Fleet overview", worker: null,
        description: "Every Herald worker: RED per worker (rate, errors, duration), consumer lag per worker and partition, dead letters, retries, circuits and Redis errors.",
        panels: [
            stat("Running instances", [t(`sum(herald_build_info{${S}})`, "")]),
            stat("Events in /s", [t(rate("herald_events_consumed_total"), "")], { unit: "ops" }),
            stat("Dead letters (1h)", [t(`sum(increase(herald_events_processed_total{${S},outcome="dead_lettered"}[1h]))`, "")]),
            stat("Consumer lag", [t(`sum(herald_consumer_lag{${S}})`, "")]),
            stat("Destinations open", [t(`count(max by (destination) (herald_guard_circuit_state{${S}}) == 2) or vector(0)`, "")]),
            stat("Batch pauses (15m)", [t(`sum(increase(herald_batch_pauses_total{${S}}[15m]))`, "")]),
            row("Rate"),
            ts("Events consumed /s by worker", [t(rate("herald_events_consumed_total", "", "worker"), "{{worker}}")], { unit: "ops" }),
            ts("Processed /s by worker and outcome", [t(rate("herald_events_processed_total", "", "worker, outcome"), "{{worker}} {{outcome}}")], { unit: "ops" }),
            row("Errors"),
            ts("Dead letters /s by worker", [t(rate("herald_events_processed_total", 'outcome="dead_lettered"', "worker"), "{{worker}}")], { unit: "ops" }),
            ts("Retries /s by worker", [t(rate("herald_events_processed_total", 'outcome="retried"', "worker"), "{{worker}}")], { unit: "ops" }),
            ts("Error ratio by worker (retried + dead-lettered / processed)", [
                t(`${rate("herald_events_processed_total", 'outcome=~"retried|dead_lettered"', "worker")} / ${rate("herald_events_processed_total", "", "worker")}`, "{{worker}}")],
                { unit: "percentunit" }),
            row("Duration"),
            ts("Processing latency p50 / p99 by worker", [
                t(q(0.5, "herald_event_processing_seconds", "worker"), "{{worker}} p50"),
                t(q(0.99, "herald_event_processing_seconds", "worker"), "{{worker}} p99")], { unit: "s" }),
            ts("Mean processing latency by worker", [
                t(`${rate("herald_event_processing_seconds_sum", "", "worker")} / ${rate("herald_event_processing_seconds_count", "", "worker")}`, "{{worker}}")], { unit: "s" }),
            panel("heatmap", "Processing latency distribution", [
                t(`sum by (le) (increase(herald_event_processing_seconds_bucket{${S}}[${RI}]))`, "{{le}}", { format: "heatmap" })]),
            row("Lag"),
            ts("Consumer lag by worker and topic", [t(`sum by (worker, topic) (herald_consumer_lag{${S}})`, "{{worker}} {{topic}}")]),
            ts("Consumer lag by worker and partition (top 20)", [
                t(`topk(20, sum by (worker, topic, partition) (herald_consumer_lag{${S}}))`, "{{worker}} {{topic}}/{{partition}}")]),
            ts("Lag trend (messages/s)", [t(`sum by (worker) (deriv(herald_consumer_lag{${S}}[5m]))`, "{{worker}}")]),
            row("Dependencies"),
            circuits(""),
            ts("Auth failures /s by destination", [
                t(`max by (destination) (rate(herald_guard_auth_failures_total{${S}}[${RI}]))`, "{{destination}}")], { unit: "ops" }),
            ts("Redis errors /s by worker", [t(rate("herald_redis_errors_total", "", "worker"), "{{worker}}")], { unit: "ops" }),
            ts("Source errors /s by worker", [t(rate("herald_source_errors_total", "", "worker"), "{{worker}}")], { unit: "ops" }),
            ts("Batch pauses /s by worker", [t(rate("herald_batch_pauses_total", "", "worker"), "{{worker}}")], { unit: "ops" }),
            ts("Rebalances by worker", [t(`sum by (worker) (increase(herald_source_rebalances_total{${S}}[${RI}]))`, "{{worker}}")]),
            instancesTable(),
        ],
    },
    "herald-unread": {
        title: "Herald / Unread", worker: "unread",
        description: "herald-unread: exact unread counts and badge totals.",
        panels: [
            stat("Pairs updated /s", [t(rate("herald_unread_pairs_updated_total"), "")], { unit: "ops" }),
            stat("Saturated (range)", [t(`sum(increase(herald_unread_saturated_total{${S}}[$__range]))`, "")]),
            stat("Events in /s", [t(rate("herald_events_consumed_total"), "")], { unit: "ops" }),
            stat("Consumer lag", [t(`sum(herald_consumer_lag{${S}})`, "")]),
            row("Unread throughput"),
            ts("Pairs updated /s by instance", [t(rate("herald_unread_pairs_updated_total", "", "instance"), "{{instance}}")], { unit: "ops" }),
            ts("Pairs updated per processed event", [
                t(`${rate("herald_unread_pairs_updated_total")} / ${rate("herald_events_processed_total", 'outcome="ok"')}`, "pairs/event")]),
            ts("Saturated counts /s", [t(rate("herald_unread_saturated_total", "", "instance"), "{{instance}}")], { unit: "ops",
                description: "Pairs at HERALD_UNREAD_MAX_PER_CONVERSATION after a batch." }),
            ts("Events per batch", [t(`${rate("herald_events_processed_total")} / ${rate("herald_batches_total")}`, "mean batch size")]),
            panel("bargauge", "Top 10 partitions by lag", [
                t(`topk(10, sum by (topic, partition, instance) (herald_consumer_lag{${S}}))`, "{{topic}}/{{partition}}", { instant: true })]),
            ...common(),
            instancesTable(),
        ],
    },
    "herald-push": {
        title: "Herald / Push", worker: "push",
        description: "herald-push: deliveries to APNs, FCM and Web Push by provider and status, dead tokens, provider latency, the device registry and the providers' circuits.",
        panels: [
            stat("Deliveries /s", [t(rate("herald_push_deliveries_total"), "")], { unit: "ops" }),
            stat("Sent ratio", [t(`${rate("herald_push_deliveries_total", 'status="sent"')} / ${rate("herald_push_deliveries_total", 'status!="duplicate"')}`, "")], { unit: "percentunit" }),
            stat("Tokens invalidated (1h)", [t(`sum(increase(herald_push_invalidated_total{${S}}[1h]))`, "")]),
            stat("Consumer lag", [t(`sum(herald_consumer_lag{${S}})`, "")]),
            row("Deliveries"),
            ts("Deliveries /s by provider and status", [t(rate("herald_push_deliveries_total", "", "provider, status"), "{{provider}} {{status}}")], { unit: "ops",
                description: "sent, invalid, transient, throttled, auth, permanent, duplicate: one per device and attempt." }),
            ts("Failed deliveries /s by provider and status", [
                t(rate("herald_push_deliveries_total", 'status=~"invalid|transient|throttled|auth|permanent"', "provider, status"), "{{provider}} {{status}}")],
                { unit: "ops", description: "invalid: the provider says the token is dead (it is removed); auth: fix the credentials." }),
            ts("Invalidated tokens /s by provider and reason", [t(rate("herald_push_invalidated_total", "", "provider, reason"), "{{provider}} {{reason}}")], { unit: "ops" }),
            ts("Provider call latency p50 / p99", [
                t(q(0.5, "herald_push_latency_seconds", "provider"), "{{provider}} p50"),
                t(q(0.99, "herald_push_latency_seconds", "provider"), "{{provider}} p99")], { unit: "s" }),
            ts("Device registry events /s", [t(rate("herald_push_registry_total", "", "op"), "{{op}}")], { unit: "ops" }),
            ts("Provider tokens minted", [t(`sum by (provider) (increase(herald_push_token_refreshes_total{${S}}[${RI}]))`, "{{provider}}")]),
            circuits('destination=~"push:.*"'),
            ...common(),
            instancesTable(),
        ],
    },
    "herald-email": {
        title: "Herald / Email", worker: "email",
        description: "herald-email: emails sent and suppressed by category, skipped, digest sizes, window lateness, windows, transport latency and failures.",
        panels: [
            stat("Sent (1h)", [t(`sum(increase(herald_email_sent_total{${S}}[1h]))`, "")]),
            stat("Suppressed (1h)", [t(`sum(increase(herald_email_suppressed_total{${S}}[1h]))`, "")]),
            stat("Window lateness p99", [t(q(0.99, "herald_email_window_lateness_seconds"), "")], { unit: "s" }),
            stat("Windows lost (1h)", [t(`sum(increase(herald_email_windows_total{${S},result="lost"}[1h]))`, "")]),
            row("Emails"),
            ts("Sent /s by category and mode", [t(rate("herald_email_sent_total", "", "category, mode"), "{{category}} {{mode}}")], { unit: "ops" }),
            ts("Suppressed /s by category", [t(rate("herald_email_suppressed_total", "", "category"), "{{category}}")], { unit: "ops",
                description: "Events a leading window suppressed (HERALD_EMAIL_MODE=leading or a category's mode)." }),
            ts("Skipped /s by category and reason", [t(rate("herald_email_skipped_total", "", "category, reason"), "{{category}} {{reason}}")], { unit: "ops",
                description: "opt_out, no_address, render" }),
            ts("Events /s by category and result", [t(rate("herald_email_events_total", "", "category, result"), "{{category}} {{result}}")], { unit: "ops" }),
            ts("Digest size (events per email)", [
                t(q(0.5, "herald_email_digest_items"), "p50"),
                t(q(0.99, "herald_email_digest_items"), "p99"),
                t(`${rate("herald_email_digest_items_sum")} / ${rate("herald_email_digest_items_count")}`, "mean")]),
            ts("Window lateness (due time to accepted by the transport)", [
                t(q(0.5, "herald_email_window_lateness_seconds"), "p50"),
                t(q(0.99, "herald_email_window_lateness_seconds"), "p99")], { unit: "s" }),
            ts("Windows /s by result", [t(rate("herald_email_windows_total", "", "result"), "{{result}}")], { unit: "ops",
                description: "claimed, reclaimed, completed, lost" }),
            ts("Transport latency p50 / p99", [
                t(q(0.5, "herald_email_send_seconds", "transport"), "{{transport}} p50"),
                t(q(0.99, "herald_email_send_seconds", "transport"), "{{transport}} p99")], { unit: "s" }),
            ts("Send failures /s by class, possible duplicates", [
                t(rate("herald_email_failures_total", "", "class"), "{{class}}"),
                t(rate("herald_email_duplicate_sends_total"), "possible duplicates")], { unit: "ops" }),
            circuits('destination=~"email:.*"'),
            ...common(),
            instancesTable(),
        ],
    },
    "herald-subs": {
        title: "Herald / Subscriptions", worker: "subs",
        description: "herald-subs: App Store and Google Play notifications by type and strategy, verification failures, entitlements applied and state transitions.",
        panels: [
            stat("Notifications /s", [t(rate("herald_subs_notifications_total"), "")], { unit: "ops" }),
            stat("Verification failures (1h)", [t(`sum(increase(herald_subs_verification_failures_total{${S}}[1h]))`, "")]),
            stat("Unknown notifications (1h)", [t(`sum(increase(herald_subs_unknown_total{${S}}[1h]))`, "")]),
            stat("Consumer lag", [t(`sum(herald_consumer_lag{${S}})`, "")]),
            row("Notifications"),
            ts("Notifications /s by provider and type", [t(rate("herald_subs_notifications_total", "", "provider, type"), "{{provider}} {{type}}")], { unit: "ops" }),
            ts("Notifications /s by strategy", [t(rate("herald_subs_notifications_total", "", "provider, strategy"), "{{provider}} {{strategy}}")], { unit: "ops" }),
            ts("Verification failures /s by provider and reason", [
                t(rate("herald_subs_verification_failures_total", "", "provider, reason"), "{{provider}} {{reason}}")], { unit: "ops",
                description: "Signatures, certificate chains, bundle ids or package names refused: every one is a dead letter." }),
            ts("Entitlements applied /s by result", [t(rate("herald_subs_applied_total", "", "provider, result"), "{{provider}} {{result}}")], { unit: "ops" }),
            ts("Entitlement state transitions /s", [t(rate("herald_subs_state_transitions_total", "", "from, to"), "{{from}} → {{to}}")], { unit: "ops" }),
            ts("entitlement.changed emitted /s", [t(rate("herald_subs_entitlement_events_total", "", "provider"), "{{provider}}")], { unit: "ops" }),
            ts("Store API: Play calls by status, tokens, acknowledgement failures", [
                t(rate("herald_subs_api_calls_total", "", "status"), "Play API {{status}}"),
                t(rate("herald_subs_token_fetches_total"), "token fetches"),
                t(rate("herald_subs_ack_failures_total"), "ack failures")], { unit: "ops" }),
            ts("Unknown notifications /s", [t(rate("herald_subs_unknown_total", "", "provider"), "{{provider}}")], { unit: "ops" }),
            ...common(),
            instancesTable(),
        ],
    },
    "herald-fanout": {
        title: "Herald / Fan-out", worker: "fanout",
        description: "herald-fanout: change records by format, routes by rule and target, webhook statuses and latency, auth failures and the webhooks' circuits.",
        panels: [
            stat("Changes in /s", [t(rate("herald_fanout_changes_total"), "")], { unit: "ops" }),
            stat("Routed /s", [t(rate("herald_fanout_routed_total"), "")], { unit: "ops" }),
            stat("Webhook auth failures (1h)", [t(`sum(increase(herald_fanout_webhook_auth_failures_total{${S}}[1h]))`, "")]),
            stat("Consumer lag", [t(`sum(herald_consumer_lag{${S}})`, "")]),
            row("Routing"),
            ts("Change records /s by format", [t(rate("herald_fanout_changes_total", "", "format"), "{{format}}")], { unit: "ops" }),
            ts("Routed /s by rule and target", [t(rate("herald_fanout_routed_total", "", "rule, target"), "{{rule}} → {{target}}")], { unit: "ops" }),
            ts("Tombstones skipped /s", [t(rate("herald_fanout_tombstones_total"), "tombstones")], { unit: "ops" }),
            row("Webhooks"),
            ts("Webhook responses /s by webhook and status", [t(rate("herald_fanout_webhook_responses_total", "", "webhook, status"), "{{webhook}} {{status}}")], { unit: "ops" }),
            ts("Webhook latency p50 / p99", [
                t(q(0.5, "herald_fanout_webhook_seconds", "webhook"), "{{webhook}} p50"),
                t(q(0.99, "herald_fanout_webhook_seconds", "webhook"), "{{webhook}} p99")], { unit: "s" }),
            ts("Webhook auth failures /s (401/403)", [t(rate("herald_fanout_webhook_auth_failures_total", "", "webhook"), "{{webhook}}")], { unit: "ops" }),
            circuits('destination=~"webhook:.*"'),
            ...common(),
            instancesTable(),
        ],
    },
    "herald-guard": {
        title: "Herald / Guard", worker: "guard",
        description: "herald-guard: the retry schedule, parked items, redeliveries, budget throttling, the shared circuit of every destination, auth failures and dead letters.",
        panels: [
            stat("Scheduled", [t(`max(herald_guard_scheduled{${S}})`, "")]),
            stat("Parked", [t(`max(herald_guard_parked{${S}})`, "")]),
            stat("Destinations open", [t(`count(max by (destination) (herald_guard_circuit_state{${S}}) == 2) or vector(0)`, "")]),
            stat("Auth failures (1h)", [t(`sum(max by (destination) (increase(herald_guard_auth_failures_total{${S}}[1h])))`, "")]),
            row("Schedule"),
            ts("Scheduled and parked items", [
                t(`sum by (instance) (herald_guard_scheduled{${S}})`, "scheduled {{instance}}"),
                t(`sum by (instance) (herald_guard_parked{${S}})`, "parked {{instance}}")]),
            ts("Redelivered /s by worker and destination", [
                t(rate("herald_guard_redelivered_total", "", "target_worker, destination"), "{{target_worker}} {{destination}}")], { unit: "ops" }),
            ts("Budget throttling /s by destination", [
                t(rate("herald_guard_budget_throttled_total", "", "destination"), "{{destination}}")], { unit: "ops",
                description: "Items kept waiting for their destination's retry budget (HERALD_GUARD_RETRY_BUDGET, HERALD_GUARD_RETRY_FLOOR_PER_S)." }),
            ts("Dead letters /s by reason", [
                t(rate("herald_guard_dead_lettered_total", "", "reason"), "{{reason}}"),
                t(rate("herald_events_processed_total", 'outcome="dead_lettered"'), "dead-lettered on input")], { unit: "ops" }),
            row("Destinations"),
            circuits(""),
            ts("Auth failures /s by destination", [
                t(`max by (destination) (rate(herald_guard_auth_failures_total{${S}}[${RI}]))`, "{{destination}}")], { unit: "ops" }),
            ...common(),
            instancesTable(),
        ],
    },
};

// ---- Grafana JSON ---------------------------------------------------------
const DS = { type: "prometheus", uid: "${datasource}" };

function variables(worker) {
    const current = worker ? { selected: true, text: worker, value: worker }
        : { selected: true, text: ["All"], value: ["$__all"] };
    const all = { selected: true, text: ["All"], value: ["$__all"] };
    const query = (name, label, qtext, o) => ({
        name, label, type: "query", datasource: DS, definition: qtext,
        query: { query: qtext, refId: "PrometheusVariableQueryEditor-VariableQuery", qryType: 1 },
        refresh: 2, regex: "", sort: 1, hide: 0, options: [], skipUrlSync: false, ...o,
    });
    return [
        { name: "datasource", label: "Data source", type: "datasource", query: "prometheus",
          current: {}, hide: 0, includeAll: false, multi: false, options: [], refresh: 1,
          regex: "", skipUrlSync: false },
        query("worker", "Worker", "label_values(herald_build_info, worker)",
              worker ? { multi: false, includeAll: false, current }
                     : { multi: true, includeAll: true, allValue: ".*", current }),
        query("instance", "Instance", 'label_values(herald_build_info{worker=~"$worker"}, instance)',
              { multi: true, includeAll: true, allValue: ".*", current: all }),
    ];
}

function layout(panels) {
    let x = 0, y = 0, id = 1, rowH = 0;
    const out = [];
    for (const p of panels) {
        const [w, h] = p.type === "row" ? [24, 1] : p.type === "stat" ? [6, 4]
            : p.type === "table" ? [24, 6] : [12, 8];
        if (x + w > 24 || p.type === "row") { x = 0; y += rowH; rowH = 0; }
        const o = { id: id++, type: p.type, title: p.title, gridPos: { h, w, x, y } };
        if (p.type === "row") {
            Object.assign(o, { collapsed: false, panels: [] });
        } else {
            o.datasource = DS;
            if (p.description) o.description = p.description;
            o.targets = p.targets.map((tg, i) => ({
                datasource: DS, refId: String.fromCharCode(65 + i), editorMode: "code",
                range: !tg.instant, instant: !!tg.instant, ...tg,
            }));
            o.fieldConfig = { defaults: { unit: p.unit || "short" }, overrides: [] };
            if (p.min !== undefined) o.fieldConfig.defaults.min = p.min;
            if (p.max !== undefined) o.fieldConfig.defaults.max = p.max;
            if (p.type === "timeseries")
                o.options = { legend: { displayMode: "list", placement: "bottom", showLegend: true },
                              tooltip: { mode: "multi", sort: "desc" } };
            if (p.type === "stat")
                o.options = { reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
                              colorMode: "value", graphMode: "area", textMode: "auto" };
            if (p.type === "heatmap")
                o.options = { calculate: false, yAxis: { unit: "s" }, color: { scheme: "Oranges", mode: "scheme" } };
            if (p.type === "table")
                o.transformations = [{ id: "organize", options: { excludeByName: { Time: true, Value: true, __name__: true } } }];
        }
        out.push(o);
        x += w; rowH = Math.max(rowH, h);
        if (p.type === "row") { x = 0; y += 1; rowH = 0; }
    }
    return out;
}

function dashboard(uid, d) {
    return {
        __inputs: [{ name: "DS_PROMETHEUS", label: "Prometheus", type: "datasource", pluginId: "prometheus", pluginName: "Prometheus" }],
        annotations: { list: [{ builtIn: 1, datasource: { type: "grafana", uid: "-- Grafana --" }, enable: true, hide: true,
                                iconColor: "rgba(0, 211, 255, 1)", name: "Annotations & Alerts", type: "dashboard" }] },
        description: d.description,
        editable: true, graphTooltip: 1, id: null,
        links: [{ type: "dashboards", tags: ["herald"], asDropdown: true, title: "Herald", includeVars: true,
                  keepTime: true, icon: "external link", targetBlank: false, tooltip: "", url: "" }],
        panels: layout(d.panels),
        refresh: "30s", schemaVersion: 39, tags: ["herald"].concat(d.worker ? [d.worker] : ["fleet"]),
        templating: { list: variables(d.worker) },
        time: { from: "now-6h", to: "now" }, timepicker: {}, timezone: "", title: d.title, uid, version: 1,
    };
}

const check = process.argv.includes("--check");
let stale = 0;
for (const [uid, d] of Object.entries(dashboards)) {
    const file = path.join(outDir, uid + ".json");
    const text = JSON.stringify(dashboard(uid, d), null, 2) + "\n";
    if (check) {
        const cur = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
        if (cur !== text) { console.error(`${file} is out of date: node dashboards/src/build.mjs`); stale++; }
    } else {
        fs.writeFileSync(file, text);
    }
}
process.exit(stale ? 1 : 0);
