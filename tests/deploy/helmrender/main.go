// helmrender: renders a Helm chart the way `helm template` does, for tests on
// machines without a helm binary (Debian 12 ships none).
//
//	helmrender [-f values.yaml]... [--set-string k.k=v]... [--name R] [--namespace NS] CHART_DIR
//
// It uses what Helm itself uses — Go's text/template with the sprig function
// library — and adds the Helm built-ins that the Herald chart uses: include,
// tpl, required, fail (sprig), toYaml, fromYaml, toJson, fromJson,
// toPrettyJson, lookup (always empty, as in `helm template`), and the
// .Values, .Release, .Chart, .Capabilities and .Template objects. Values are
// read as Helm reads them: YAML through JSON, so every number is a float64;
// later -f files are deep-merged over earlier ones and over values.yaml, and
// a null removes a default key. Every manifest is printed as
// "---\n# Source: CHART/templates/FILE\n...", like helm template; templates
// whose names start with "_" only define named templates; NOTES.txt is
// rendered (so that it is checked) but printed only with --notes.
//
// Build (no module proxy needed: Debian's golang-go,
// golang-github-masterminds-sprig-dev and golang-gopkg-yaml.v3-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o helmrender ./tests/deploy/helmrender
//
// .Files has Get only. Not implemented (the chart does not use them):
// .Files.Glob/AsConfig, subcharts,
// dependencies, hooks, schema validation (the test does that with ajv),
// --set with type inference.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// normalize turns what yaml.v3 decoded into what Helm's sigs.k8s.io/yaml
// (YAML -> JSON -> Go) gives: map[string]interface{}, []interface{},
// float64 for every number.
func normalize(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		for k, x := range t {
			t[k] = normalize(x)
		}
		return t
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = normalize(x)
		}
		return m
	case []interface{}:
		for i, x := range t {
			t[i] = normalize(x)
		}
		return t
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case uint64:
		return float64(t)
	case float32:
		return float64(t)
	default:
		return v
	}
}

func readYAMLMap(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v interface{}
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if v == nil {
		return map[string]interface{}{}, nil
	}
	m, ok := normalize(v).(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: not a YAML map", path)
	}
	return m, nil
}

// mergeValues deep-merges src over dst, as Helm merges -f files over the
// chart's values: maps merge, anything else replaces, null deletes.
func mergeValues(dst, src map[string]interface{}) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		sm, sok := v.(map[string]interface{})
		dm, dok := dst[k].(map[string]interface{})
		if sok && dok {
			mergeValues(dm, sm)
		} else {
			dst[k] = v
		}
	}
}

// setString applies --set-string a.b.c=value.
func setString(values map[string]interface{}, expr string) error {
	eq := strings.IndexByte(expr, '=')
	if eq < 0 {
		return fmt.Errorf("--set-string %q: want key=value", expr)
	}
	keys := strings.Split(expr[:eq], ".")
	m := values
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = expr[eq+1:]
	return nil
}

// toYAML as Helm's toYaml: through JSON (so keys are sorted and only JSON
// types appear), two-space indentation, no trailing newline.
func toYAML(v interface{}) string {
	j, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var generic interface{}
	if err := yaml.Unmarshal(j, &generic); err != nil {
		return ""
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(generic); err != nil {
		return ""
	}
	_ = enc.Close()
	return strings.TrimSuffix(buf.String(), "\n")
}

func fromYAML(s string) map[string]interface{} {
	var v interface{}
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	m, ok := normalize(v).(map[string]interface{})
	if !ok {
		return map[string]interface{}{}
	}
	return m
}

func toJSON(v interface{}) string {
	j, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(j)
}

func toPrettyJSON(v interface{}) string {
	j, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return ""
	}
	return string(j)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

type capabilities struct {
	KubeVersion map[string]string
	APIVersions apiVersions
	HelmVersion map[string]string
}

// files is .Files: Get reads a file of the chart (as Helm's .Files.Get).
type files struct{ dir string }

func (f files) Get(name string) string {
	data, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(name)))
	if err != nil {
		return ""
	}
	return string(data)
}

type apiVersions []string

// Has reports whether an apiVersion ("keda.sh/v1alpha1") or
// "apiVersion/Kind" is known; helm template without --api-versions knows
// only the built-in ones, and so does this.
func (a apiVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

func main() {
	var valueFiles, sets, apiVers multiFlag
	flag.Var(&valueFiles, "f", "values file (repeatable)")
	flag.Var(&sets, "set-string", "key.path=value (repeatable)")
	flag.Var(&apiVers, "api-versions", "extra apiVersion known to .Capabilities.APIVersions.Has (repeatable)")
	release := flag.String("name", "herald", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	notes := flag.Bool("notes", false, "print NOTES.txt too")
	valuesOut := flag.String("values-out", "", "also write the merged values as JSON to this file")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helmrender [-f values.yaml]... [--set-string k=v]... [--name R] [--namespace NS] CHART_DIR")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), valueFiles, sets, apiVers, *release, *namespace, *notes, *valuesOut); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(chartDir string, valueFiles, sets, apiVers []string, release, namespace string, notes bool, valuesOut string) error {
	chartMeta, err := readYAMLMap(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	chart := map[string]interface{}{}
	for k, v := range chartMeta { // Helm exposes Chart.yaml keys capitalised
		chart[strings.ToUpper(k[:1])+k[1:]] = v
	}
	chartName := fmt.Sprint(chart["Name"])

	values, err := readYAMLMap(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range valueFiles {
		m, err := readYAMLMap(f)
		if err != nil {
			return err
		}
		mergeValues(values, m)
	}
	for _, s := range sets {
		if err := setString(values, s); err != nil {
			return err
		}
	}
	if valuesOut != "" {
		if err := os.WriteFile(valuesOut, []byte(toJSON(values)), 0o644); err != nil {
			return err
		}
	}

	versions := apiVersions{"v1", "apps/v1", "policy/v1", "autoscaling/v2", "batch/v1",
		"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"}
	versions = append(versions, apiVers...)
	top := map[string]interface{}{
		"Values": values,
		"Chart":  chart,
		"Files":  files{dir: chartDir},
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": capabilities{
			KubeVersion: map[string]string{"Version": "v1.30.0", "Major": "1", "Minor": "30", "GitVersion": "v1.30.0"},
			APIVersions: versions,
			HelmVersion: map[string]string{"Version": "v3.15.0"},
		},
	}

	tmplDir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(tmplDir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") ||
			strings.HasSuffix(n, ".tpl") || n == "NOTES.txt") {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)

	root := template.New("chart").Option("missingkey=zero")
	includeDepth := 0
	funcs := sprig.TxtFuncMap()
	for _, k := range []string{"env", "expandenv"} { // Helm removes these
		delete(funcs, k)
	}
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = fromYAML
	funcs["toJson"] = toJSON
	funcs["fromJson"] = fromJSON
	funcs["toPrettyJson"] = toPrettyJSON
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		includeDepth++
		defer func() { includeDepth-- }()
		if includeDepth > 1000 {
			return "", fmt.Errorf("include %q: recursion too deep", name)
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	root.Funcs(funcs)

	for _, n := range names {
		src, err := os.ReadFile(filepath.Join(tmplDir, n))
		if err != nil {
			return err
		}
		full := chartName + "/templates/" + n
		if _, err := root.New(full).Parse(string(src)); err != nil {
			return err
		}
	}

	var out bytes.Buffer
	for _, n := range names {
		if strings.HasPrefix(n, "_") {
			continue
		}
		full := chartName + "/templates/" + n
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": full, "BasePath": chartName + "/templates"}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, data); err != nil {
			return err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if n == "NOTES.txt" {
			if notes {
				fmt.Fprintf(os.Stderr, "NOTES:\n%s\n", text)
			}
			continue
		}
		// Split on document markers as Helm does, dropping empty documents.
		for _, doc := range splitDocs(text) {
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", full, doc)
		}
	}
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

func splitDocs(text string) []string {
	var docs []string
	var cur []string
	flush := func() {
		d := strings.TrimSpace(strings.Join(cur, "\n"))
		cur = nil
		// A document with only comments is empty, as in Helm.
		empty := true
		for _, l := range strings.Split(d, "\n") {
			t := strings.TrimSpace(l)
			if t != "" && !strings.HasPrefix(t, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, strings.TrimRight(strings.Join(trimLeadingBlank(strings.Split(d, "\n")), "\n"), " \n"))
		}
	}
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimRight(l, " ") == "---" {
			flush()
			continue
		}
		cur = append(cur, l)
	}
	flush()
	return docs
}

func trimLeadingBlank(lines []string) []string {
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	return lines
}
