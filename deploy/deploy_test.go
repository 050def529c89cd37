// Package deploy_test validates the deployment files in deploy/: the compose
// file, the NATS and nginx configs, the example vigil.yaml and the
// Kubernetes manifests. No container engine is needed: every YAML document
// is parsed, cross-references are checked (labels, selectors, ports,
// volumes, mounts, services), and every `vigil serve` flag, VIGIL_*
// variable and config key they use is checked against the flags the real
// binary prints in `vigil serve --help`, so the files cannot drift from
// the code.
//
// TestMain builds ./cmd/vigil once, or uses the binary named by $VIGIL_BIN.
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/nats-io/nats-server/v2/server"
)

// shutdownGraceSeconds is `vigil serve`'s drain deadline
// (cmd/vigil.DefaultShutdownGrace); pods must be given longer.
const shutdownGraceSeconds = 20

var (
	vigilBin string
	// serveFlags maps each `vigil serve` flag to its environment variable.
	serveFlags map[string]string
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	vigilBin = os.Getenv("VIGIL_BIN")
	if vigilBin == "" {
		dir, err := os.MkdirTemp("", "deploy-test-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "deploy_test: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		vigilBin = filepath.Join(dir, "vigil")
		if out, err := exec.Command("go", "build", "-o", vigilBin, "../cmd/vigil").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "deploy_test: build vigil: %v\n%s\nTry: go build -o /tmp/vigil ./cmd/vigil && VIGIL_BIN=/tmp/vigil go test ./deploy\n", err, out)
			return 1
		}
	}
	var err error
	if serveFlags, err = helpFlags(vigilBin); err != nil {
		fmt.Fprintf(os.Stderr, "deploy_test: %v\n", err)
		return 1
	}
	return m.Run()
}

// helpFlags runs `vigil serve --help` and parses its flag list: lines
// "  --name  (env VIGIL_NAME)".
func helpFlags(bin string) (map[string]string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "serve", "--help")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("vigil serve --help: %v\n%s", err, stderr.String())
	}
	re := regexp.MustCompile(`(?m)^  --([a-z0-9-]+)  \(env (VIGIL_[A-Z0-9_]+)\)$`)
	flags := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(stdout.String(), -1) {
		flags[m[1]] = m[2]
	}
	// The flags this deployment relies on: if the help format changes, the
	// parse above must fail loudly rather than pass vacuously.
	for _, f := range []string{"config", "http", "nats", "clickhouse", "replicas", "tokens", "log-level"} {
		if _, ok := flags[f]; !ok {
			return nil, fmt.Errorf("vigil serve --help lists no --%s (parsed %d flags):\n%s", f, len(flags), stdout.String())
		}
	}
	return flags, nil
}

// checkArgs checks a `vigil` command line: it must run serve, and every
// --flag must exist.
func checkArgs(args []string) error {
	if len(args) == 0 || args[0] != "serve" {
		return fmt.Errorf("command %q does not run `vigil serve`", args)
	}
	var errs []error
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if _, ok := serveFlags[name]; !ok {
			errs = append(errs, fmt.Errorf("vigil serve has no flag --%s", name))
		}
	}
	return errors.Join(errs...)
}

// checkEnv checks that a VIGIL_* variable mirrors a serve flag; other
// variables are not Vigil's business.
func checkEnv(name string) error {
	if !strings.HasPrefix(name, "VIGIL_") {
		return nil
	}
	for _, env := range serveFlags {
		if env == name {
			return nil
		}
	}
	return fmt.Errorf("%s mirrors no `vigil serve` flag", name)
}

// checkConfigKeys checks a vigil.yaml document: every key is a serve flag
// in snake_case ("tokens" may also be a map of token to tenant).
func checkConfigKeys(doc map[string]any) error {
	var errs []error
	for _, k := range sortedKeys(doc) {
		name := strings.ReplaceAll(k, "_", "-")
		_, ok := serveFlags[name]
		switch {
		case strings.Contains(k, "-"):
			errs = append(errs, fmt.Errorf("key %q: config keys are snake_case (%s)", k, strings.ReplaceAll(k, "-", "_")))
		case !ok || name == "config":
			errs = append(errs, fmt.Errorf("key %q is no `vigil serve` flag", k))
		}
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestCheckers proves the checkers reject drift; the file tests below
// would otherwise pass vacuously.
func TestCheckers(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantErr bool
	}{
		{"known flags", checkArgs([]string{"serve", "--config", "/x", "--log-level=debug"}), false},
		{"unknown flag", checkArgs([]string{"serve", "--sync-everything"}), true},
		{"not serve", checkArgs([]string{"dev"}), true},
		{"known env", checkEnv("VIGIL_TOKENS"), false},
		{"unknown env", checkEnv("VIGIL_TOKEN_FILE"), true},
		{"foreign env", checkEnv("CLICKHOUSE_PASSWORD"), false},
		{"known keys", checkConfigKeys(map[string]any{"log_level": "info", "nats": "x", "tokens": map[string]any{}}), false},
		{"kebab key", checkConfigKeys(map[string]any{"log-level": "info"}), true},
		{"unknown key", checkConfigKeys(map[string]any{"retention_days": 7}), true},
		{"config key", checkConfigKeys(map[string]any{"config": "/etc/x"}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.err != nil) != tc.wantErr {
				t.Errorf("err = %v, want error: %v", tc.err, tc.wantErr)
			}
		})
	}
}

// runServeWithConfig runs the real `vigil serve --config path` with no
// tokens in its environment: it must get past config parsing and stop at
// the missing tokens (exit 2), before connecting to anything.
func runServeWithConfig(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command(vigilBin, "serve", "--config", path)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIGIL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "no ingest tokens configured") {
		t.Errorf("vigil serve --config %s: %v, stderr:\n%s\nwant exit 2 at the token check (config accepted)", path, err, stderr.String())
	}
}

func readYAMLDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", path)
	}
	return docs
}

// get walks a parsed YAML value: get(doc, "spec", "template", "metadata").
func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func strMap(v any) map[string]string {
	out := map[string]string{}
	m, _ := v.(map[string]any)
	for k, x := range m {
		out[k] = fmt.Sprint(x)
	}
	return out
}

// subset reports whether every pair of a is in b.
func subset(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) > 0
}

func TestExampleConfig(t *testing.T) {
	doc := readYAMLDocs(t, "vigil.yaml")[0]
	if err := checkConfigKeys(doc); err != nil {
		t.Error(err)
	}
	if _, ok := doc["tokens"]; ok {
		t.Error("vigil.yaml holds tokens: secrets belong in VIGIL_TOKENS")
	}
	runServeWithConfig(t, "vigil.yaml")
}

// interpolate applies compose's variable substitution as if nothing were
// set: ${VAR:-default} becomes default, ${VAR:?error} a placeholder.
func interpolate(raw []byte) []byte {
	re := regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?])([^}]*)\}`)
	return re.ReplaceAllFunc(raw, func(m []byte) []byte {
		sub := re.FindSubmatch(m)
		if strings.HasSuffix(string(sub[1]), "?") {
			return []byte("placeholder")
		}
		return sub[2]
	})
}

type composeFile struct {
	Services map[string]map[string]any `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

func TestCompose(t *testing.T) {
	raw, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(interpolate(raw), &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, want := range []string{"nats-1", "nats-2", "nats-3", "clickhouse", "vigil-1", "vigil-2", "lb"} {
		if cf.Services[want] == nil {
			t.Errorf("service %s missing", want)
		}
	}
	usedVolumes := map[string]bool{}
	hostPorts := map[string]string{}
	var vigils, natsNodes []string
	for _, name := range sortedKeys(cf.Services) {
		svc := cf.Services[name]
		if str(svc["image"]) == "" && svc["build"] == nil {
			t.Errorf("%s: neither image nor build", name)
		}
		if b := svc["build"]; b != nil {
			df := filepath.Join(str(get(b, "context")), str(get(b, "dockerfile")))
			if _, err := os.Stat(df); err != nil {
				t.Errorf("%s: dockerfile: %v", name, err)
			}
		}
		for _, v := range list(svc["volumes"]) {
			src, _, _ := strings.Cut(str(v), ":")
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s: bind mount: %v", name, err)
				}
				continue
			}
			usedVolumes[src] = true
			if _, ok := cf.Volumes[src]; !ok {
				t.Errorf("%s: named volume %q not declared under volumes:", name, src)
			}
		}
		for _, p := range list(svc["ports"]) {
			host, _, ok := strings.Cut(fmt.Sprint(p), ":")
			if !ok {
				continue
			}
			if other, dup := hostPorts[host]; dup {
				t.Errorf("host port %s published by %s and %s", host, other, name)
			}
			hostPorts[host] = name
		}
		deps := get(svc, "depends_on")
		var depNames []string
		switch d := deps.(type) {
		case []any:
			for _, x := range d {
				depNames = append(depNames, str(x))
			}
		case map[string]any:
			depNames = sortedKeys(d)
		}
		for _, d := range depNames {
			if cf.Services[d] == nil {
				t.Errorf("%s depends on unknown service %s", name, d)
			}
		}
		var args []string
		for _, a := range list(svc["command"]) {
			args = append(args, str(a))
		}
		switch {
		case strings.HasPrefix(name, "vigil"):
			vigils = append(vigils, name)
			if err := checkArgs(args); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			for _, env := range sortedKeys(strMap(svc["environment"])) {
				if err := checkEnv(env); err != nil {
					t.Errorf("%s: environment: %v", name, err)
				}
			}
			// The --config path must be mounted.
			if i := slices.Index(args, "--config"); i >= 0 && i+1 < len(args) {
				mounted := false
				for _, v := range list(svc["volumes"]) {
					parts := strings.Split(str(v), ":")
					mounted = mounted || (len(parts) >= 2 && parts[1] == args[i+1])
				}
				if !mounted {
					t.Errorf("%s: --config %s is not mounted", name, args[i+1])
				}
			}
			if len(depNames) == 0 {
				t.Errorf("%s: depends on nothing; it needs NATS and ClickHouse", name)
			}
		case strings.HasPrefix(name, "nats-"):
			natsNodes = append(natsNodes, name)
		}
	}
	for _, v := range sortedKeys(cf.Volumes) {
		if !usedVolumes[v] {
			t.Errorf("volume %s declared but unused", v)
		}
	}
	if len(vigils) < 2 {
		t.Errorf("%d vigil replicas, want 2", len(vigils))
	}

	// NATS nodes: each mounts its own config, which nats-server accepts,
	// with JetStream, sync_interval: always, and routes to every node.
	for _, n := range natsNodes {
		conf := filepath.Join("nats", n+".conf")
		want := "./" + conf + ":/etc/nats/nats.conf:ro"
		if !slices.ContainsFunc(list(cf.Services[n]["volumes"]), func(v any) bool { return str(v) == want }) {
			t.Errorf("%s does not mount %s", n, want)
		}
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Errorf("%s: nats-server rejects it: %v", conf, err)
			continue
		}
		if !opts.JetStream || !opts.SyncAlways {
			t.Errorf("%s: jetstream %v, sync always %v; want both", conf, opts.JetStream, opts.SyncAlways)
		}
		if opts.ServerName != n {
			t.Errorf("%s: server_name %q, want %q", conf, opts.ServerName, n)
		}
		if !strings.HasPrefix(opts.StoreDir, "/data/") {
			t.Errorf("%s: store_dir %s is not on the /data volume", conf, opts.StoreDir)
		}
		var routes []string
		for _, r := range opts.Routes {
			routes = append(routes, r.Hostname())
		}
		sort.Strings(routes)
		if !slices.Equal(routes, natsNodes) {
			t.Errorf("%s: routes %v, want %v", conf, routes, natsNodes)
		}
	}

	// vigil.yaml's NATS and ClickHouse hosts are compose services.
	cfg := readYAMLDocs(t, "vigil.yaml")[0]
	var natsHosts []string
	for _, u := range strings.Split(str(cfg["nats"]), ",") {
		pu, err := url.Parse(strings.TrimSpace(u))
		if err != nil {
			t.Fatalf("vigil.yaml nats: %v", err)
		}
		natsHosts = append(natsHosts, pu.Hostname())
	}
	sort.Strings(natsHosts)
	if !slices.Equal(natsHosts, natsNodes) {
		t.Errorf("vigil.yaml nats hosts %v, want the compose nodes %v", natsHosts, natsNodes)
	}
	for _, dsn := range []string{str(cfg["clickhouse"]), strMap(cf.Services["vigil-1"]["environment"])["VIGIL_CLICKHOUSE"]} {
		pu, err := url.Parse(dsn)
		if err != nil || cf.Services[pu.Hostname()] == nil {
			t.Errorf("ClickHouse DSN host of %q is not a compose service", dsn)
		}
	}

	// nginx balances over exactly the vigil services, on vigil's port.
	ngx, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(str(cfg["http"]), ":")
	var upstream []string
	for _, m := range regexp.MustCompile(`(?m)^\s*server\s+([a-z0-9-]+):(\d+)`).FindAllStringSubmatch(string(ngx), -1) {
		if m[2] != port {
			t.Errorf("nginx upstream %s:%s, but vigil listens on %s", m[1], m[2], port)
		}
		upstream = append(upstream, m[1])
	}
	sort.Strings(upstream)
	if !slices.Equal(upstream, vigils) {
		t.Errorf("nginx upstream %v, want %v", upstream, vigils)
	}
	if !strings.Contains(string(ngx), "proxy_set_header Upgrade $http_upgrade") {
		t.Error("nginx.conf does not pass WebSocket upgrades")
	}
}

// manifest is one parsed Kubernetes document and its file.
type manifest struct {
	file string
	doc  map[string]any
}

func (m manifest) kind() string { return str(m.doc["kind"]) }
func (m manifest) name() string { return str(get(m.doc, "metadata", "name")) }

func loadManifests(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []manifest
	for _, f := range files {
		switch filepath.Base(f) {
		case "kustomization.yaml", "nats-values.yaml":
			continue // not manifests: kustomize and Helm input
		}
		for _, d := range readYAMLDocs(t, f) {
			out = append(out, manifest{f, d})
		}
	}
	return out
}

func TestKubernetes(t *testing.T) {
	ms := loadManifests(t)
	byKind := map[string][]manifest{}
	for _, m := range ms {
		if str(m.doc["apiVersion"]) == "" || m.kind() == "" || m.name() == "" {
			t.Errorf("%s: a document lacks apiVersion, kind or metadata.name", m.file)
			continue
		}
		byKind[m.kind()] = append(byKind[m.kind()], m)
	}
	for _, k := range []string{"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Secret"} {
		if len(byKind[k]) != 1 {
			t.Fatalf("%d %s documents, want 1", len(byKind[k]), k)
		}
	}
	dep := byKind["Deployment"][0].doc
	selector := strMap(get(dep, "spec", "selector", "matchLabels"))
	podLabels := strMap(get(dep, "spec", "template", "metadata", "labels"))
	if !subset(selector, podLabels) {
		t.Errorf("Deployment selector %v does not match its pod labels %v", selector, podLabels)
	}
	if g, _ := get(dep, "spec", "template", "spec", "terminationGracePeriodSeconds").(uint64); g <= shutdownGraceSeconds {
		t.Errorf("terminationGracePeriodSeconds %d, want > %d (vigil's drain)", g, shutdownGraceSeconds)
	}
	secrets := map[string]map[string]string{}
	for _, s := range byKind["Secret"] {
		secrets[s.name()] = strMap(get(s.doc, "stringData"))
		for _, k := range sortedKeys(secrets[s.name()]) {
			if err := checkEnv(k); err != nil {
				t.Errorf("Secret %s: %v", s.name(), err)
			}
		}
	}
	configMaps := map[string]map[string]string{}
	for _, c := range byKind["ConfigMap"] {
		configMaps[c.name()] = strMap(get(c.doc, "data"))
	}
	containers := list(get(dep, "spec", "template", "spec", "containers"))
	if len(containers) == 0 {
		t.Fatal("Deployment has no containers")
	}
	portNames := map[string]bool{}
	for _, c := range containers {
		name := str(get(c, "name"))
		var args []string
		for _, a := range list(get(c, "args")) {
			args = append(args, str(a))
		}
		if err := checkArgs(args); err != nil {
			t.Errorf("container %s: %v", name, err)
		}
		for _, e := range list(get(c, "env")) {
			if err := checkEnv(str(get(e, "name"))); err != nil {
				t.Errorf("container %s: env: %v", name, err)
			}
		}
		for _, e := range list(get(c, "envFrom")) {
			ref := str(get(e, "secretRef", "name"))
			if _, ok := secrets[ref]; ref != "" && !ok {
				t.Errorf("container %s: envFrom Secret %q is not defined", name, ref)
			}
		}
		for _, p := range list(get(c, "ports")) {
			portNames[str(get(p, "name"))] = true
		}
		for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
			if got := str(get(c, probe, "httpGet", "path")); got != path {
				t.Errorf("container %s: %s path %q, want %q", name, probe, got, path)
			}
			if p := str(get(c, probe, "httpGet", "port")); !portNames[p] {
				t.Errorf("container %s: %s port %q is not a named container port", name, probe, p)
			}
		}
		for _, kind := range []string{"requests", "limits"} {
			for _, res := range []string{"cpu", "memory"} {
				if get(c, "resources", kind, res) == nil {
					t.Errorf("container %s: resources.%s.%s not set", name, kind, res)
				}
			}
		}
		// The --config file comes from a mounted ConfigMap whose YAML the
		// real binary accepts.
		if i := slices.Index(args, "--config"); i >= 0 && i+1 < len(args) {
			cfgPath := args[i+1]
			found := false
			for _, vm := range list(get(c, "volumeMounts")) {
				mountPath := str(get(vm, "mountPath"))
				if filepath.Dir(cfgPath) != mountPath {
					continue
				}
				for _, v := range list(get(dep, "spec", "template", "spec", "volumes")) {
					if str(get(v, "name")) != str(get(vm, "name")) {
						continue
					}
					cm := configMaps[str(get(v, "configMap", "name"))]
					body, ok := cm[filepath.Base(cfgPath)]
					if !ok {
						continue
					}
					found = true
					var doc map[string]any
					if err := yaml.Unmarshal([]byte(body), &doc); err != nil {
						t.Fatalf("ConfigMap %s: %v", filepath.Base(cfgPath), err)
					}
					if err := checkConfigKeys(doc); err != nil {
						t.Errorf("ConfigMap: %v", err)
					}
					tmp := filepath.Join(t.TempDir(), "vigil.yaml")
					if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
						t.Fatal(err)
					}
					runServeWithConfig(t, tmp)
				}
			}
			if !found {
				t.Errorf("container %s: --config %s is not a key of a mounted ConfigMap", name, cfgPath)
			}
		}
	}
	pdb := byKind["PodDisruptionBudget"][0].doc
	if ps := strMap(get(pdb, "spec", "selector", "matchLabels")); !subset(ps, podLabels) || !subset(ps, selector) {
		t.Errorf("PodDisruptionBudget selector %v does not match the Deployment (%v)", ps, selector)
	}
	if get(pdb, "spec", "minAvailable") == nil && get(pdb, "spec", "maxUnavailable") == nil {
		t.Error("PodDisruptionBudget sets neither minAvailable nor maxUnavailable")
	}
	svc := byKind["Service"][0].doc
	if ss := strMap(get(svc, "spec", "selector")); !subset(ss, podLabels) {
		t.Errorf("Service selector %v does not select the Deployment's pods %v", ss, podLabels)
	}
	for _, p := range list(get(svc, "spec", "ports")) {
		if tp := get(p, "targetPort"); !portNames[fmt.Sprint(tp)] {
			t.Errorf("Service targetPort %v is not a named container port", tp)
		}
	}

	// kustomization.yaml lists exactly the manifests.
	k := readYAMLDocs(t, filepath.Join("k8s", "kustomization.yaml"))[0]
	var listed []string
	for _, r := range list(k["resources"]) {
		listed = append(listed, filepath.Join("k8s", str(r)))
	}
	files := map[string]bool{}
	for _, m := range ms {
		files[m.file] = true
	}
	want := sortedKeys(files)
	sort.Strings(listed)
	if !slices.Equal(listed, want) {
		t.Errorf("kustomization resources %v, want %v", listed, want)
	}

	// The NATS Helm values keep the archive's durability.
	nv := readYAMLDocs(t, filepath.Join("k8s", "nats-values.yaml"))[0]
	if got := str(get(nv, "config", "jetstream", "merge", "sync_interval")); got != "always" {
		t.Errorf("nats-values.yaml sync_interval %q, want always", got)
	}
	if r := fmt.Sprint(get(nv, "config", "cluster", "replicas")); r != "3" {
		t.Errorf("nats-values.yaml cluster replicas %s, want 3", r)
	}
}
