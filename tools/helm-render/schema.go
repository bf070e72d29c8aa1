package main

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
)

// The JSON Schema keywords this validator understands. A schema using any other keyword
// is refused rather than half-checked.
var knownKeywords = map[string]bool{
	"$schema": true, "$id": true, "$comment": true, "title": true, "description": true,
	"default": true, "examples": true, "definitions": true, "$ref": true,
	"type": true, "properties": true, "additionalProperties": true, "required": true,
	"items": true, "enum": true, "minimum": true, "maximum": true, "minLength": true,
	"maxLength": true, "pattern": true, "minItems": true, "uniqueItems": true, "anyOf": true,
}

// validate checks a value against a JSON Schema (draft-07 subset) and lists every problem
// by path, like Helm's schema check.
func validate(root, schema map[string]interface{}, v interface{}, at string) []string {
	where := at
	if where == "" {
		where = "(root)"
	}
	var problems []string
	add := func(format string, args ...interface{}) {
		problems = append(problems, where+": "+fmt.Sprintf(format, args...))
	}
	keys := make([]string, 0, len(schema))
	for k := range schema {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !knownKeywords[k] {
			add("schema keyword %q is not supported by this renderer", k)
		}
	}
	if ref, ok := schema["$ref"].(string); ok {
		target, err := resolveRef(root, ref)
		if err != nil {
			add("%v", err)
			return problems
		}
		problems = append(problems, validate(root, target, v, at)...)
	}
	if t, ok := schema["type"]; ok && !typeMatches(t, v) {
		add("Invalid type. Expected: %v, given: %s", t, jsonType(v))
		return problems
	}
	if enum, ok := schema["enum"].([]interface{}); ok {
		found := false
		for _, e := range enum {
			if fmt.Sprint(e) == fmt.Sprint(v) && jsonType(e) == jsonType(v) {
				found = true
			}
		}
		if !found {
			add("must be one of %v", enum)
		}
	}
	if anyOf, ok := schema["anyOf"].([]interface{}); ok {
		matched := false
		for _, alt := range anyOf {
			if m, ok := alt.(map[string]interface{}); ok && len(validate(root, m, v, at)) == 0 {
				matched = true
			}
		}
		if !matched {
			add("must match at least one schema in anyOf")
		}
	}
	switch t := v.(type) {
	case map[string]interface{}:
		props, _ := schema["properties"].(map[string]interface{})
		if req, ok := schema["required"].([]interface{}); ok {
			for _, r := range req {
				if _, present := t[r.(string)]; !present {
					add("%s is required", r)
				}
			}
		}
		names := make([]string, 0, len(t))
		for k := range t {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			child := strings.TrimPrefix(at+"."+k, ".")
			if ps, ok := props[k].(map[string]interface{}); ok {
				problems = append(problems, validate(root, ps, t[k], child)...)
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !ap {
					add("Additional property %s is not allowed", k)
				}
			case map[string]interface{}:
				problems = append(problems, validate(root, ap, t[k], child)...)
			}
		}
	case []interface{}:
		if n, ok := schema["minItems"].(float64); ok && float64(len(t)) < n {
			add("Array must have at least %v items", n)
		}
		if u, ok := schema["uniqueItems"].(bool); ok && u {
			seen := map[string]bool{}
			for _, item := range t {
				key := fmt.Sprintf("%#v", item)
				if seen[key] {
					add("array items must be unique")
				}
				seen[key] = true
			}
		}
		if items, ok := schema["items"].(map[string]interface{}); ok {
			for i, item := range t {
				problems = append(problems, validate(root, items, item, fmt.Sprintf("%s.%d", at, i))...)
			}
		}
	case string:
		if n, ok := schema["minLength"].(float64); ok && float64(len([]rune(t))) < n {
			add("String length must be greater than or equal to %v", n)
		}
		if n, ok := schema["maxLength"].(float64); ok && float64(len([]rune(t))) > n {
			add("String length must be less than or equal to %v", n)
		}
		if p, ok := schema["pattern"].(string); ok {
			re, err := regexp.Compile(p)
			if err != nil {
				add("bad pattern %q: %v", p, err)
			} else if !re.MatchString(t) {
				add("Does not match pattern '%s'", p)
			}
		}
	case float64:
		if n, ok := schema["minimum"].(float64); ok && t < n {
			add("Must be greater than or equal to %v", n)
		}
		if n, ok := schema["maximum"].(float64); ok && t > n {
			add("Must be less than or equal to %v", n)
		}
	}
	return problems
}

func resolveRef(root map[string]interface{}, ref string) (map[string]interface{}, error) {
	const prefix = "#/definitions/"
	if !strings.HasPrefix(ref, prefix) {
		return nil, fmt.Errorf("$ref %s: only %s... is supported", ref, prefix)
	}
	defs, _ := root["definitions"].(map[string]interface{})
	target, ok := defs[strings.TrimPrefix(ref, prefix)].(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("$ref %s: not found", ref)
	}
	return target, nil
}

func jsonType(v interface{}) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if t == math.Trunc(t) {
			return "integer"
		}
		return "number"
	case []interface{}:
		return "array"
	case map[string]interface{}:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func typeMatches(want interface{}, v interface{}) bool {
	got := jsonType(v)
	check := func(w string) bool { return w == got || (w == "number" && got == "integer") }
	switch t := want.(type) {
	case string:
		return check(t)
	case []interface{}:
		for _, w := range t {
			if s, ok := w.(string); ok && check(s) {
				return true
			}
		}
	}
	return false
}
