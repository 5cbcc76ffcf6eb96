package main

// The container image and the Kubernetes manifests cannot be built or
// applied on the test machines (no container engine, no cluster), so this
// test reads them and checks that they agree with each other and with the
// configuration keys they rely on.

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/voicegw/voicegw/gateway/config"
)

// k8sObject is the part of a manifest the test reads.
type k8sObject struct {
	Kind     string
	Metadata struct {
		Name   string
		Labels map[string]string
	}
	Data map[string]string
	Spec struct {
		Replicas     *int
		MinAvailable *int `yaml:"minAvailable"`
		Selector     struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
		Template struct {
			Metadata struct{ Labels map[string]string }
			Spec     struct {
				Containers []k8sContainer
				Volumes    []struct {
					Name      string
					ConfigMap *struct{ Name string } `yaml:"configMap"`
					Secret    *struct {
						SecretName string `yaml:"secretName"`
						Items      []struct{ Key, Path string }
					}
				}
			}
		}
		Ports []struct {
			Name       string
			TargetPort string `yaml:"targetPort"`
		}
		Endpoints []struct{ Port, Path string }
	}
}

type k8sContainer struct {
	Args  []string
	Ports []struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
	}
	Env []struct {
		Name      string
		Value     string
		ValueFrom any `yaml:"valueFrom"`
	}
	LivenessProbe  k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe k8sProbe `yaml:"readinessProbe"`
	VolumeMounts   []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet struct{ Path, Port string } `yaml:"httpGet"`
}

func readManifests(t *testing.T) map[string]*k8sObject {
	t.Helper()
	files, err := filepath.Glob("../../deploy/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/ (%v)", err)
	}
	objs := map[string]*k8sObject{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "Kustomization" {
				continue
			}
			objs[o.Kind] = &o
		}
	}
	for _, kind := range []string{"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor"} {
		if objs[kind] == nil {
			t.Fatalf("deploy/ has no %s", kind)
		}
	}
	return objs
}

func TestDeployManifests(t *testing.T) {
	objs := readManifests(t)
	dep := objs["Deployment"]
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", dep.Spec.Replicas)
	}
	labels := dep.Spec.Template.Metadata.Labels
	for kind, sel := range map[string]map[string]string{
		"Deployment":          dep.Spec.Selector.MatchLabels,
		"PodDisruptionBudget": objs["PodDisruptionBudget"].Spec.Selector.MatchLabels,
		"ServiceMonitor":      objs["ServiceMonitor"].Spec.Selector.MatchLabels,
	} {
		if len(sel) == 0 {
			t.Errorf("%s selects nothing", kind)
		}
		target := labels
		if kind == "ServiceMonitor" {
			target = objs["Service"].Metadata.Labels
		}
		for k, v := range sel {
			if target[k] != v {
				t.Errorf("%s selects %s=%s, which the pods (or Service) lack", kind, k, v)
			}
		}
	}
	if pdb := objs["PodDisruptionBudget"]; pdb.Spec.MinAvailable == nil || *pdb.Spec.MinAvailable >= *dep.Spec.Replicas {
		t.Errorf("the disruption budget must leave room for a drain")
	}
	if len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("want one container")
	}
	c := dep.Spec.Template.Spec.Containers[0]
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes %q and %q, want /healthz and /readyz", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	for _, p := range []string{c.LivenessProbe.HTTPGet.Port, c.ReadinessProbe.HTTPGet.Port} {
		if _, ok := ports[p]; !ok {
			t.Errorf("a probe uses port %q, which the container does not declare", p)
		}
	}
	for _, p := range objs["Service"].Spec.Ports {
		if _, ok := ports[p.TargetPort]; !ok {
			t.Errorf("the Service targets port %q, which the container does not declare", p.TargetPort)
		}
	}
	ep := objs["ServiceMonitor"].Spec.Endpoints
	if len(ep) != 1 || ep[0].Path != "/metrics" {
		t.Fatalf("ServiceMonitor endpoints %+v", ep)
	}

	// The configuration in the ConfigMap loads with the environment the
	// Deployment gives it, and listens where the probes and scrapes go.
	env := map[string]string{}
	for _, e := range c.Env {
		v := e.Value
		if v == "" && e.ValueFrom != nil {
			v = "from-" + e.Name
		}
		env[e.Name] = v
	}
	src, ok := objs["ConfigMap"].Data["config.yaml"]
	if !ok {
		t.Fatal("the ConfigMap has no config.yaml")
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)(:-[^}]*)?\}`).FindAllStringSubmatch(src, -1) {
		if _, ok := env[m[1]]; !ok && m[2] == "" {
			t.Errorf("the config reads ${%s}, which the Deployment does not set", m[1])
		}
	}
	env["VOICEGW_WEATHER_SKILL_ID"] = "amzn1.ask.skill.deploy-test"
	cfg, problems := config.Parse("deploy/configmap.yaml", []byte(src), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if cfg == nil {
		t.Fatalf("the ConfigMap's config does not load:\n%v", problems.Err())
	}
	for _, p := range problems {
		t.Errorf("the ConfigMap's config: %s", p.Error())
	}
	portOf := func(key, addr string) int {
		_, p, err := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		if err != nil || n == 0 {
			t.Fatalf("%s %q has no port", key, addr)
		}
		if !strings.HasPrefix(addr, "0.0.0.0:") && !strings.HasPrefix(addr, ":") {
			t.Errorf("%s %q is not reachable from outside the pod", key, addr)
		}
		return n
	}
	if got := portOf("server.listen", cfg.Server.Listen); got != ports["http"] {
		t.Errorf("server.listen port %d, container port http %d", got, ports["http"])
	}
	if got := portOf("server.metrics_listen", cfg.Server.MetricsListen); got != ports[ep[0].Port] {
		t.Errorf("server.metrics_listen port %d, scraped port %s = %d", got, ep[0].Port, ports[ep[0].Port])
	}
	if cfg.Vault == nil || cfg.Vault.Auth.Method != "approle" {
		t.Fatal("the deployed config must log in to Vault with AppRole")
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(cfg.Vault.Auth.SecretIDFile, m.MountPath+"/") {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("vault.auth.secret_id_file %s is on no mounted volume", cfg.Vault.Auth.SecretIDFile)
	}
	configMounted := false
	for _, m := range c.VolumeMounts {
		if len(c.Args) == 3 && c.Args[0] == "serve" && c.Args[1] == "-c" && strings.HasPrefix(c.Args[2], m.MountPath+"/") {
			configMounted = true
		}
	}
	if !configMounted {
		t.Errorf("the container runs %v, whose config is on no mounted volume", c.Args)
	}

	// The image runs the same command as the Deployment, as a non-root user.
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`ENTRYPOINT ["/voicegw"]`, `CMD ["` + strings.Join(c.Args, `", "`) + `"]`,
		"USER 65532", "CGO_ENABLED=0", "FROM gcr.io/distroless/static"} {
		if !bytes.Contains(df, []byte(want)) {
			t.Errorf("the Dockerfile lacks %s", want)
		}
	}
}
