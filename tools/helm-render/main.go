// helm-render renders a Helm chart the way `helm template` does, for machines without
// Helm: Go's text/template with the sprig functions (the engine Helm uses) plus the few
// Helm functions this project's chart uses. Values are merged and checked against
// values.schema.json first, as Helm does. Anything outside that subset fails loudly, so
// the chart cannot drift into features this renderer would silently get wrong.
//
//	helm-render [-f values.yaml]... [-name RELEASE] [-namespace NS] CHART_DIR
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	yaml "gopkg.in/yaml.v2"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

func main() {
	var files valueFiles
	flag.Var(&files, "f", "values file (repeatable; later files win)")
	name := flag.String("name", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helm-render [-f values.yaml]... [-name RELEASE] [-namespace NS] CHART_DIR")
		os.Exit(2)
	}
	out, err := render(flag.Arg(0), files, *name, *namespace)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

// readYAML parses YAML the way Helm does (sigs.k8s.io/yaml): through JSON, so numbers
// are float64 and maps are map[string]interface{}.
func readYAML(data []byte) (map[string]interface{}, error) {
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	j, err := json.Marshal(jsonable(raw))
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if string(j) == "null" {
		return out, nil
	}
	if err := json.Unmarshal(j, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// jsonable turns yaml.v2's map[interface{}]interface{} into JSON-encodable maps.
func jsonable(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := map[string]interface{}{}
		for k, val := range t {
			m[fmt.Sprint(k)] = jsonable(val)
		}
		return m
	case []interface{}:
		for i := range t {
			t[i] = jsonable(t[i])
		}
	}
	return v
}

// coalesce merges override into base like Helm: maps merge deeply, anything else
// replaces, and an explicit null removes the key.
func coalesce(base, override map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range override {
		if v == nil {
			delete(out, k)
			continue
		}
		bm, bok := out[k].(map[string]interface{})
		om, ook := v.(map[string]interface{})
		if bok && ook {
			out[k] = coalesce(bm, om)
		} else {
			out[k] = v
		}
	}
	return out
}

func toYAML(v interface{}) (string, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var ordered yaml.MapSlice
	var generic interface{}
	if err := yaml.Unmarshal(j, &ordered); err == nil && len(j) > 0 && j[0] == '{' {
		generic = ordered
	} else if err := yaml.Unmarshal(j, &generic); err != nil {
		return "", err
	}
	y, err := yaml.Marshal(generic)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(y), "\n"), nil
}

type chartMeta struct {
	Name, Version, AppVersion, Description, KubeVersion string
}

type capabilities struct {
	KubeVersion struct{ Version, Major, Minor, GitVersion string }
}

type files map[string][]byte

// Get returns a chart file's content, or "" (as Helm's .Files.Get does).
func (f files) Get(name string) string { return string(f[name]) }

func render(chartDir string, valuePaths []string, releaseName, namespace string) (string, error) {
	chartYAML, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	chartMap, err := readYAML(chartYAML)
	if err != nil {
		return "", fmt.Errorf("Chart.yaml: %w", err)
	}
	str := func(k string) string { s, _ := chartMap[k].(string); return s }
	chart := chartMeta{str("name"), str("version"), str("appVersion"), str("description"), str("kubeVersion")}

	defaults, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return "", err
	}
	values, err := readYAML(defaults)
	if err != nil {
		return "", fmt.Errorf("values.yaml: %w", err)
	}
	for _, p := range valuePaths {
		data, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		user, err := readYAML(data)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		values = coalesce(values, user)
	}
	if schemaJSON, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json")); err == nil {
		var schema map[string]interface{}
		if err := json.Unmarshal(schemaJSON, &schema); err != nil {
			return "", fmt.Errorf("values.schema.json: %w", err)
		}
		if problems := validate(schema, schema, values, ""); len(problems) > 0 {
			return "", fmt.Errorf("values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n- %s",
				chart.Name, strings.Join(problems, "\n- "))
		}
	}

	chartFiles := files{}
	var templateNames []string
	err = filepath.Walk(chartDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(chartDir, p)
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(rel, "templates/") {
			templateNames = append(templateNames, rel)
		}
		chartFiles[rel] = data
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(templateNames)

	root := template.New("gotpl")
	funcs := helmFuncs(root)
	root.Funcs(funcs).Option("missingkey=zero")
	for _, n := range templateNames {
		if _, err := root.New(path.Join(chart.Name, n)).Parse(string(chartFiles[n])); err != nil {
			return "", err
		}
	}

	caps := capabilities{}
	caps.KubeVersion.Version, caps.KubeVersion.GitVersion = "v1.31.0", "v1.31.0"
	caps.KubeVersion.Major, caps.KubeVersion.Minor = "1", "31"
	top := map[string]interface{}{
		"Values": values,
		"Chart":  chart,
		"Release": map[string]interface{}{
			"Name": releaseName, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": caps,
		"Files":        chartFiles,
	}

	var out strings.Builder
	for _, n := range templateNames {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		full := path.Join(chart.Name, n)
		scope := map[string]interface{}{}
		for k, v := range top {
			scope[k] = v
		}
		scope["Template"] = map[string]interface{}{"Name": full, "BasePath": path.Join(chart.Name, "templates")}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, scope); err != nil {
			return "", err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			// helm template leaves NOTES out; write it to stderr for a human to read.
			fmt.Fprintf(os.Stderr, "NOTES:\n%s\n", text)
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", full, strings.TrimLeft(text, "\n"))
	}
	return out.String(), nil
}

// helmFuncs is sprig without env access (as in Helm) plus Helm's own functions.
func helmFuncs(root *template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	includeDepth := 0
	f["include"] = func(name string, data interface{}) (string, error) {
		if includeDepth > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		includeDepth++
		defer func() { includeDepth-- }()
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return strings.ReplaceAll(buf.String(), "<no value>", ""), err
	}
	f["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	f["toYaml"] = func(v interface{}) string { s, _ := toYAML(v); return s }
	f["fromYaml"] = func(s string) map[string]interface{} {
		m, err := readYAML([]byte(s))
		if err != nil {
			return map[string]interface{}{"Error": err.Error()}
		}
		return m
	}
	// Like `helm template`, which has no cluster: lookup finds nothing.
	f["lookup"] = func(apiVersion, kind, namespace, name string) map[string]interface{} {
		return map[string]interface{}{}
	}
	return f
}
