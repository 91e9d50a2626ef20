// Validates rendered Kubernetes manifests against the Kubernetes, KEDA and
// Prometheus Operator schemas (npm kubernetes-models,
// @kubernetes-models/keda, @kubernetes-models/prometheus-operator), then
// checks what the Herald chart promises.
//
//   node validate_chart.mjs chart   SCHEMA.json VALUES.json RENDERED.yaml [--bad BAD.json]...
//   node validate_chart.mjs objects RENDERED.yaml          (kustomize output)
//
// chart mode: VALUES.json (the merged values, helmrender --values-out) must
// pass values.schema.json; each --bad values file must fail it.
// Prints one line per failure and "N passed, N failed".
import fs from "node:fs";
import { createRequire } from "node:module";

const nm = process.env.HERALD_NODE_MODULES;
const require = createRequire(import.meta.url);
const YAML = require(nm + "/yaml");
const Ajv = require(nm + "/ajv").default;

let passed = 0, failed = 0;
const ok = (cond, what) => { if (cond) passed++; else { failed++; console.log("FAIL " + what); } };

// apiVersion/kind -> module path of its model class.
function modelPath(apiVersion, kind) {
    const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
    if (group === "keda.sh") return `${nm}/@kubernetes-models/keda/keda.sh/${version}/${kind}.js`;
    if (group === "monitoring.coreos.com")
        return `${nm}/@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${kind}.js`;
    return `${nm}/kubernetes-models/${group ? group + "/" : ""}${version}/${kind}.js`;
}

async function validate(obj, where) {
    const path = modelPath(obj.apiVersion, obj.kind);
    if (!fs.existsSync(path)) { ok(false, `${where}: no schema for ${obj.apiVersion} ${obj.kind}`); return; }
    const mod = await import(path);
    const Model = mod[obj.kind] || mod.default;
    try { new Model(obj).validate(); ok(true, where); }
    catch (e) { ok(false, `${where}: ${e.message.split("\n").slice(0, 5).join("; ")}`); }
}

function load(file) {
    return YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map(d => d.toJS()).filter(Boolean);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "objects") {
    const objs = load(args[0]);
    ok(objs.length > 0, `${args[0]}: no objects`);
    for (const o of objs) await validate(o, `${args[0]} ${o.kind}/${o.metadata && o.metadata.name}`);
    checkWorkloads(objs, args[0]);
} else {
    const [schemaFile, valuesFile, rendered, ...rest] = args;
    const ajv = new Ajv({ allErrors: true, strict: false });
    const check = ajv.compile(JSON.parse(fs.readFileSync(schemaFile, "utf8")));
    const values = JSON.parse(fs.readFileSync(valuesFile, "utf8"));
    ok(check(values), `${valuesFile} rejected by values.schema.json: ${ajv.errorsText(check.errors)}`);
    for (let i = 0; i < rest.length; i += 2) {
        if (rest[i] !== "--bad") continue;
        const bad = JSON.parse(fs.readFileSync(rest[i + 1], "utf8"));
        ok(!check(bad), `values.schema.json accepts the bad values ${rest[i + 1]}`);
    }
    const objs = load(rendered);
    for (const o of objs) await validate(o, `${rendered} ${o.kind}/${o.metadata.name}`);
    checkWorkloads(objs, rendered);
    checkScaling(objs, values, rendered);
}

// What every worker's workload must have (issue 16, STYLE.md 7 and 8).
function checkWorkloads(objs, where) {
    const cms = Object.fromEntries(objs.filter(o => o.kind === "ConfigMap").map(o => [o.metadata.name, o]));
    const workloads = objs.filter(o => o.kind === "Deployment" || o.kind === "StatefulSet");
    ok(workloads.length > 0, `${where}: no Deployment or StatefulSet`);
    for (const d of workloads) {
        const w = `${where} ${d.kind}/${d.metadata.name}`;
        const pod = d.spec.template.spec;
        const c = pod.containers[0];
        ok(pod.enableServiceLinks === false, `${w}: enableServiceLinks is not false`);
        ok(pod.securityContext && pod.securityContext.runAsNonRoot === true, `${w}: runAsNonRoot`);
        ok(pod.securityContext && pod.securityContext.seccompProfile &&
           pod.securityContext.seccompProfile.type === "RuntimeDefault", `${w}: seccompProfile RuntimeDefault`);
        const sc = c.securityContext || {};
        ok(sc.readOnlyRootFilesystem === true, `${w}: readOnlyRootFilesystem`);
        ok(sc.allowPrivilegeEscalation === false, `${w}: allowPrivilegeEscalation`);
        ok(sc.capabilities && JSON.stringify(sc.capabilities.drop) === '["ALL"]' && !sc.capabilities.add,
           `${w}: capabilities must drop ALL and add none`);
        ok(c.livenessProbe && c.livenessProbe.httpGet.path === "/healthz", `${w}: liveness probe on /healthz`);
        ok(c.readinessProbe && c.readinessProbe.httpGet.path === "/readyz", `${w}: readiness probe on /readyz`);
        ok(Array.isArray(c.command) && c.command.length === 1 && /^\/usr\/local\/bin\/herald-/.test(c.command[0]),
           `${w}: command must exec the binary directly`);
        // terminationGracePeriodSeconds above HERALD_SHUTDOWN_TIMEOUT_MS.
        let shutdownMs = 25000;
        for (const ef of c.envFrom || []) {
            const cm = ef.configMapRef && cms[ef.configMapRef.name];
            if (cm && cm.data && cm.data.HERALD_SHUTDOWN_TIMEOUT_MS) shutdownMs = +cm.data.HERALD_SHUTDOWN_TIMEOUT_MS;
        }
        ok(pod.terminationGracePeriodSeconds * 1000 > shutdownMs,
           `${w}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} not above ${shutdownMs} ms`);
        const env = c.env || [];
        const inst = env.find(e => e.name === "HERALD_INSTANCE_ID");
        if (d.kind === "StatefulSet")
            ok(inst && inst.valueFrom && inst.valueFrom.fieldRef.fieldPath === "metadata.name",
               `${w}: HERALD_INSTANCE_ID not set from the pod name`);
        else
            ok(!inst && !Object.values(cms).some(cm => cm.data && cm.data.HERALD_INSTANCE_ID),
               `${w}: HERALD_INSTANCE_ID set on a Deployment`);
        // Every *_FILE variable points into a mounted volume.
        for (const e of env.filter(e => /_FILE$/.test(e.name))) {
            const mounted = (c.volumeMounts || []).some(m => e.value.startsWith(m.mountPath + "/"));
            ok(mounted, `${w}: ${e.name}=${e.value} is not under a volume mount`);
        }
    }
}

function checkScaling(objs, values, where) {
    const byKind = k => objs.filter(o => o.kind === k);
    const workerOf = o => o.metadata.labels["app.kubernetes.io/component"];
    for (const so of byKind("ScaledObject")) {
        const name = workerOf(so);
        const wv = Object.assign({}, values.workerDefaults, values.workers[name]);
        const a = Object.assign({}, values.workerDefaults.autoscaling, (values.workers[name] || {}).autoscaling);
        const parts = Object.assign({}, values.workerDefaults.kafka, (values.workers[name] || {}).kafka).partitions;
        const w = `${where} ScaledObject/${so.metadata.name}`;
        const trig = so.spec.triggers[0];
        const target = objs.find(o => o.metadata.name === so.spec.scaleTargetRef.name &&
                                      o.kind === so.spec.scaleTargetRef.kind);
        ok(target, `${w}: scaleTargetRef names no rendered ${so.spec.scaleTargetRef.kind}`);
        ok(target && target.spec.replicas === undefined, `${w}: the target sets replicas (KEDA owns them)`);
        if (name === "email") ok(so.spec.minReplicaCount >= 1, `${w}: herald-email may scale to zero`);
        if (trig.type === "kafka") {
            for (const k of ["bootstrapServers", "consumerGroup", "lagThreshold", "activationLagThreshold", "excludePersistentLag"])
                ok(trig.metadata[k] !== undefined, `${w}: kafka trigger without ${k}`);
            if (a.maxReplicaCount === null || a.maxReplicaCount === undefined)
                ok(so.spec.maxReplicaCount === parts, `${w}: maxReplicaCount ${so.spec.maxReplicaCount} is not the partition count ${parts}`);
            ok(so.spec.maxReplicaCount <= parts, `${w}: maxReplicaCount above the partition count`);
        } else {
            ok(trig.type === "aws-sqs-queue" && trig.metadata.queueURL && trig.metadata.awsRegion,
               `${w}: ${trig.type} trigger without queueURL/awsRegion`);
            ok((wv.env || {}).HERALD_SOURCE === "sqs", `${w}: aws-sqs-queue trigger on a Kafka worker`);
        }
    }
    for (const h of byKind("HorizontalPodAutoscaler"))
        ok(h.spec.minReplicas >= 1, `${where} HPA/${h.metadata.name}: minReplicas below 1`);
    for (const p of byKind("PodDisruptionBudget")) {
        const sel = p.spec.selector.matchLabels;
        ok(objs.some(o => (o.kind === "Deployment" || o.kind === "StatefulSet") &&
                          Object.entries(sel).every(([k, v]) => o.spec.template.metadata.labels[k] === v)),
           `${where} PDB/${p.metadata.name}: selects no workload`);
    }
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
