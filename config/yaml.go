package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// YAML renders the configuration as a config file that says all of it (the
// effective configuration: defaults, file and VMRECONCILE_* overrides):
// keys as in the file, durations as 10m, secrets as <redacted>, URLs without
// user info or query. A swarm that names a docker context shows the context,
// with what it resolved to as a comment. Loading the output gives the same
// configuration, but for secrets given inline (those given as *_file keys
// are read again).
func (c Config) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(yamlNode(reflect.ValueOf(c), "")); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[Secret]()
	swarmType    = reflect.TypeFor[Swarm]()
)

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

// yamlNode renders v, the value of the key named key.
func yamlNode(v reflect.Value, key string) *yaml.Node {
	switch v.Type() {
	case durationType:
		return scalar("!!str", FormatDuration(time.Duration(v.Int())))
	case secretType:
		return scalar("!!str", v.Interface().(Secret).String())
	case swarmType:
		return swarmNode(v.Interface().(Swarm))
	}
	switch v.Kind() {
	case reflect.Struct:
		return structNode(v, nil)
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		if v.Len() == 0 || v.Type().Elem().Kind() == reflect.String {
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			n.Content = append(n.Content, yamlNode(v.Index(i), key))
		}
		return n
	case reflect.String:
		if key == "url" {
			return scalar("!!str", redactURL(v.String()))
		}
		return scalar("!!str", v.String())
	case reflect.Bool:
		return scalar("", strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int64:
		return scalar("", strconv.FormatInt(v.Int(), 10))
	case reflect.Float64:
		return scalar("", strconv.FormatFloat(v.Float(), 'g', -1, 64))
	}
	return scalar("!!str", fmt.Sprint(v.Interface())) // not reached: every Config type is above
}

// structNode renders a struct's fields under their mapstructure keys, but
// the skipped ones.
func structNode(v reflect.Value, skip map[string]bool) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	t := v.Type()
	for i := range t.NumField() {
		k := t.Field(i).Tag.Get("mapstructure")
		if k == "" || k == "-" || skip[k] || !t.Field(i).IsExported() {
			continue
		}
		n.Content = append(n.Content, scalar("!!str", k), yamlNode(v.Field(i), k))
	}
	return n
}

// swarmNode renders a swarm; one from a docker context shows the context
// and, as a comment, its endpoint and TLS files (giving both the context
// and hosts is an error).
func swarmNode(sw Swarm) *yaml.Node {
	if sw.Context == "" {
		return structNode(reflect.ValueOf(sw), map[string]bool{"context": true})
	}
	ctx := scalar("!!str", sw.Context)
	resolved := "docker context: " + strings.Join(sw.Hosts, ", ")
	if sw.CertPath != "" {
		resolved += fmt.Sprintf(", TLS files in %s (tls_verify: %t)", sw.CertPath, sw.TLSVerify)
	}
	ctx.LineComment = resolved
	return &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		scalar("!!str", "name"), scalar("!!str", sw.Name), scalar("!!str", "context"), ctx,
	}}
}

// FormatDuration writes d as a config file would: 10m, 1h30m, 720h, 500ms.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
