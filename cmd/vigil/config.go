package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/vigilhq/vigil/review/workflow"
)

// envPrefix prefixes every environment variable that mirrors a flag:
// --clickhouse-http is VIGIL_CLICKHOUSE_HTTP.
const envPrefix = "VIGIL_"

// envName returns the environment variable mirroring flag name.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// fileConfig is what a --config YAML file may hold besides flag values.
type fileConfig struct {
	// Tokens maps bearer tokens to the tenant they may write.
	Tokens map[string]string
	// Reviewers maps console/API bearer tokens to reviewer principals.
	Reviewers map[string]workflow.Principal
	// Set lists the flag names the file provided, for diagnostics.
	Set []string
}

// applyConfig fills every flag that was not given on the command line from
// VIGIL_* environment variables, then from the YAML file named by the
// "config" flag (or VIGIL_CONFIG). Precedence: flag > env > file > default.
// Unknown keys in the file are errors, as are values a flag rejects.
func applyConfig(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) (*fileConfig, error) {
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })

	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if explicit[f.Name] {
			return
		}
		if v, ok := lookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w (got %q)", envName(f.Name), err, v))
			}
			explicit[f.Name] = true
		}
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	fc := &fileConfig{}
	path := ""
	if f := fs.Lookup("config"); f != nil {
		path = f.Value.String()
	}
	if path == "" {
		return fc, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := doc[k]
		if k == "tokens" {
			m, ok := v.(map[string]any)
			if !ok {
				errs = append(errs, fmt.Errorf("config file %s: tokens: want a map of token to tenant", path))
				continue
			}
			fc.Tokens = map[string]string{}
			for tok, tenant := range m {
				s, ok := tenant.(string)
				if !ok {
					errs = append(errs, fmt.Errorf("config file %s: tokens: tenant for a token must be a string", path))
					continue
				}
				fc.Tokens[tok] = s
			}
			continue
		}
		if k == "reviewers" {
			m, ok := v.(map[string]any)
			if !ok {
				errs = append(errs, fmt.Errorf("config file %s: reviewers: want a map of token to {name, tenant, role}", path))
				continue
			}
			fc.Reviewers = map[string]workflow.Principal{}
			for tok, pv := range m {
				pm, _ := pv.(map[string]any)
				name, _ := pm["name"].(string)
				tenant, _ := pm["tenant"].(string)
				role, _ := pm["role"].(string)
				if name == "" || tenant == "" || !workflow.Role(role).Valid() {
					errs = append(errs, fmt.Errorf("config file %s: reviewers: every entry needs name, tenant and role (reviewer, privileged or admin)", path))
					continue
				}
				fc.Reviewers[tok] = workflow.Principal{Name: name, Tenant: tenant, Role: workflow.Role(role)}
			}
			continue
		}
		name := strings.ReplaceAll(k, "_", "-")
		f := fs.Lookup(name)
		if f == nil || name == "config" {
			errs = append(errs, fmt.Errorf("config file %s: unknown key %q", path, k))
			continue
		}
		fc.Set = append(fc.Set, k)
		if explicit[name] {
			continue
		}
		if err := fs.Set(name, fmt.Sprint(v)); err != nil {
			errs = append(errs, fmt.Errorf("config file %s: %s: %w (got %v)", path, k, err, v))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return fc, nil
}

// lookupEnv is os.LookupEnv; tests replace it.
var lookupEnv = os.LookupEnv
