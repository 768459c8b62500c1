package waypointcmd

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/gowaypoint/waypoint/cmd/internal/cli"
	"github.com/gowaypoint/waypoint/internal/kubeapply"
)

// `waypoint apply` and `waypoint generate` write the waypoint Gateway of
// `istioctl waypoint apply` and `istioctl waypoint generate`
// (istioctl/pkg/waypoint/waypoint.go of the pinned Istio): the same
// Gateway for the same flags, the namespace enrolment and its --overwrite,
// --wait; plus --class (istio-mesh is our controller's class) and --image
// (the sidecar.istio.io/proxyImage annotation istiod's waypoint template
// takes the image from). docs/kubernetes.md, "waypoint apply".

// The Gateway's fixed parts, as istioctl builds it.
const (
	gatewayAPIVersion  = "gateway.networking.k8s.io/v1"
	defaultWaypoint    = "waypoint" // istioctl's --name default (constants.DefaultNamespaceWaypoint)
	classIstioWaypoint = "istio-waypoint"
	classIstioMesh     = "istio-mesh"
	hboneListener      = "mesh"
	hbonePort          = 15008
)

// The labels and the annotation.
const (
	labelWaypointFor   = "istio.io/waypoint-for"
	labelRevision      = "istio.io/rev"
	labelUseWaypoint   = "istio.io/use-waypoint"
	labelDataplaneMode = "istio.io/dataplane-mode"
	annotationImage    = "sidecar.istio.io/proxyImage"
)

// applyFieldManager owns the fields `waypoint apply` sets. It is not
// istioctl's ("istioctl"): with a manager of its own, a Gateway first
// applied by istioctl can be switched to our image without istioctl's
// next apply removing the annotation, and a change of a field istioctl
// set (the class, --for) is a conflict that --overwrite resolves instead
// of a silent change.
const applyFieldManager = "waypoint"

// defaultWaitTimeout is --waypoint-timeout's default, istioctl's.
const defaultWaitTimeout = 90 * time.Second

// trafficTypes are the values of --for (istioctl's validTrafficTypes).
var trafficTypes = []string{"all", "none", "service", "workload"}

// waypointClasses are the values of --class.
var waypointClasses = []string{classIstioWaypoint, classIstioMesh}

// gatewayObject is a Gateway in the fields `waypoint apply` sets or reads.
type gatewayObject struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   objectMeta     `json:"metadata"`
	Spec       gatewaySpec    `json:"spec"`
	Status     *gatewayStatus `json:"status,omitempty"`
}

type objectMeta struct {
	Name        string            `json:"name,omitempty"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type gatewaySpec struct {
	GatewayClassName string            `json:"gatewayClassName"`
	Listeners        []gatewayListener `json:"listeners"`
}

type gatewayListener struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

type gatewayStatus struct {
	Conditions []condition `json:"conditions,omitempty"`
}

type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// namespaceObject is a Namespace in the fields read.
type namespaceObject struct {
	Metadata objectMeta `json:"metadata"`
}

// waypointSpec is what the flags of apply and generate ask for.
type waypointSpec struct {
	Namespace string // "" leaves the Gateway's namespace out (generate without -n)
	Name      string // "" is "waypoint"
	Class     string // "" is istio-waypoint
	For       string // istio.io/waypoint-for; "" leaves the label out (istiod's default applies)
	Revision  string // istio.io/rev; "" leaves it out
	Image     string // sidecar.istio.io/proxyImage; "" leaves it out
}

// gateway builds the Gateway, or says what in the spec is wrong; the
// first two messages are istioctl's.
func (s waypointSpec) gateway() (*gatewayObject, error) {
	name := cmp.Or(s.Name, defaultWaypoint)
	if name == "none" {
		return nil, errors.New("invalid name provided for waypoint, 'none' is a reserved value")
	}
	if s.For != "" && !slices.Contains(trafficTypes, s.For) {
		return nil, fmt.Errorf("invalid traffic type: %s. Valid options are: %v", s.For, trafficTypes)
	}
	class := cmp.Or(s.Class, classIstioWaypoint)
	if !slices.Contains(waypointClasses, class) {
		return nil, fmt.Errorf("--class %q: want %s (istiod deploys it) or %s (the waypoint controller does)", class, classIstioWaypoint, classIstioMesh)
	}
	if s.Image != "" && (!strings.Contains(s.Image, "/") || strings.ContainsAny(s.Image, " \t\n")) {
		return nil, fmt.Errorf("--image %q: want a reference with a \"/\" (e.g. localhost/waypoint:TAG, REGISTRY/waypoint:TAG): istiod's waypoint template ignores a %s annotation without one", s.Image, annotationImage)
	}
	gw := &gatewayObject{
		APIVersion: gatewayAPIVersion, Kind: "Gateway",
		Metadata: objectMeta{Name: name, Namespace: s.Namespace},
		Spec: gatewaySpec{GatewayClassName: class,
			Listeners: []gatewayListener{{Name: hboneListener, Port: hbonePort, Protocol: "HBONE"}}},
	}
	if s.For != "" || s.Revision != "" {
		gw.Metadata.Labels = map[string]string{}
		if s.For != "" {
			gw.Metadata.Labels[labelWaypointFor] = s.For
		}
		if s.Revision != "" {
			gw.Metadata.Labels[labelRevision] = s.Revision
		}
	}
	if s.Image != "" {
		gw.Metadata.Annotations = map[string]string{annotationImage: s.Image}
	}
	return gw, nil
}

// gatewayFlags registers the flags apply and generate share.
func gatewayFlags(fs *flag.FlagSet, s *waypointSpec) {
	for _, n := range []string{"namespace", "n"} {
		fs.StringVar(&s.Namespace, n, "", "the waypoint's namespace (apply: default the kubeconfig context's, else \"default\"; generate: none)")
	}
	fs.StringVar(&s.Name, "name", defaultWaypoint, "the waypoint Gateway's name")
	fs.StringVar(&s.Class, "class", classIstioWaypoint, "the Gateway's class: "+classIstioWaypoint+" (istiod deploys the waypoint; --image swaps its image) or "+classIstioMesh+" (the waypoint controller deploys it, docs/controller.md)")
	fs.StringVar(&s.For, "for", "", fmt.Sprintf("the traffic type %v of the waypoint (the %s label; default: none set, istiod's default, service)", trafficTypes, labelWaypointFor))
	for _, n := range []string{"revision", "r"} {
		fs.StringVar(&s.Revision, n, "", "the Istio revision to label the waypoint with ("+labelRevision+")")
	}
	fs.StringVar(&s.Image, "image", "", "the waypoint's image, set as the "+annotationImage+" annotation (must contain a \"/\"; e.g. localhost/waypoint:TAG from `make image`); default none: istiod's (Envoy) for "+classIstioWaypoint+", the controller's for "+classIstioMesh)
}

// generate prints the Gateway of its flags as YAML, as `istioctl
// waypoint generate` does.
func generate(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ExitOnError)
	var s waypointSpec
	gatewayFlags(fs, &s)
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("generate: unexpected arguments %q", fs.Args())
	}
	gw, err := s.gateway()
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	b, err := yaml.Marshal(gw)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

// applyOptions are apply's flags beyond the Gateway's.
type applyOptions struct {
	spec            waypointSpec
	kubeconfig      string
	context         string
	enrollNamespace bool
	overwrite       bool
	wait            bool
	waitTimeout     time.Duration
}

// apply writes the waypoint Gateway of its flags to the API server, as
// `istioctl waypoint apply` does.
func apply(args []string) error {
	fs := flag.NewFlagSet("apply", flag.ExitOnError)
	var o applyOptions
	gatewayFlags(fs, &o.spec)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: the first existing file of $KUBECONFIG, else ~/.kube/config, else the pod's service account)")
	fs.StringVar(&o.context, "context", "", "the kubeconfig context to use (default its current-context)")
	fs.BoolVar(&o.enrollNamespace, "enroll-namespace", false, "label the namespace "+labelUseWaypoint+"=NAME once the waypoint is applied; a namespace that already has a waypoint is left alone, and nothing is applied, without --overwrite")
	fs.BoolVar(&o.overwrite, "overwrite", false, "with --enroll-namespace, replace the namespace's waypoint; and take over the Gateway's fields another field manager (istioctl, kubectl) set to other values (a forced server-side apply)")
	for _, n := range []string{"wait", "w"} {
		fs.BoolVar(&o.wait, n, false, "wait until the Gateway is Programmed (polled every second, for at most --waypoint-timeout)")
	}
	fs.DurationVar(&o.waitTimeout, "waypoint-timeout", defaultWaitTimeout, "with --wait: how long to wait")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("apply: unexpected arguments %q", fs.Args())
	}
	if o.waitTimeout <= 0 {
		return fmt.Errorf("apply: --waypoint-timeout %v: want more than 0", o.waitTimeout)
	}
	if _, err := o.spec.gateway(); err != nil { // the flags checked before the kubeconfig is read
		return fmt.Errorf("apply: %w", err)
	}
	// The pod's service account directory moves under $WAYPOINT_POD_ROOT,
	// as the pod mode's files do: the in-cluster config, tested off a pod.
	saDir := kubeapply.DefaultServiceAccountDir
	if root := os.Getenv(PodRootEnv); root != "" {
		saDir = filepath.Join(root, saDir)
	}
	cfg, err := kubeapply.Load(kubeapply.Sources{Kubeconfig: o.kubeconfig, Context: o.context, ServiceAccountDir: saDir})
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	client, err := kubeapply.New(cfg)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	defer client.CloseIdle()
	o.spec.Namespace = cmp.Or(o.spec.Namespace, cfg.Namespace, "default")
	ctx := cli.Signals(context.Background(), nil)
	return o.run(ctx, client, os.Stdout, os.Stderr)
}

// run applies, as istioctl: the namespace read (it must exist), the
// enrolment checked, the Gateway applied, waited for, then the namespace
// labelled. Progress goes to out, warnings to warn.
func (o *applyOptions) run(ctx context.Context, c *kubeapply.Client, out, warn io.Writer) error {
	gw, err := o.spec.gateway()
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	ns, name := gw.Metadata.Namespace, gw.Metadata.Name
	nsPath := kubeapply.Path("v1", "namespaces", "", ns)
	var nsObj namespaceObject
	if err := c.Get(ctx, nsPath, &nsObj); err != nil {
		if kubeapply.IsNotFound(err) {
			return fmt.Errorf("apply: namespace: %s not found", ns)
		}
		return fmt.Errorf("apply: namespace %s: %w", ns, err)
	}
	if o.enrollNamespace {
		if cur := nsObj.Metadata.Labels[labelUseWaypoint]; cur != "" && !o.overwrite {
			fmt.Fprintf(warn, "warning: namespace %s already has an enrolled waypoint (%s=%s): nothing applied; add --overwrite to apply %s and enroll it\n",
				ns, labelUseWaypoint, cur, name)
			return nil
		}
		if nsObj.Metadata.Labels[labelDataplaneMode] != "ambient" {
			fmt.Fprintf(warn, "warning: namespace %s is not enrolled in ambient; consider `kubectl label namespace %s %s=ambient`\n", ns, ns, labelDataplaneMode)
		}
	}
	gwPath := kubeapply.Path(gatewayAPIVersion, "gateways", ns, name)
	if err := c.Apply(ctx, gwPath, gw, kubeapply.ApplyOptions{FieldManager: applyFieldManager, Force: o.overwrite}, nil); err != nil {
		switch {
		case kubeapply.IsNotFound(err):
			return fmt.Errorf("apply: the Gateway API's CRDs must be installed before a waypoint is applied: %w", err)
		case kubeapply.IsConflict(err):
			return fmt.Errorf("apply: Gateway %s/%s: %w (--overwrite takes those fields over)", ns, name, err)
		}
		return fmt.Errorf("apply: Gateway %s/%s: %w", ns, name, err)
	}
	fmt.Fprintf(out, "waypoint %s/%s applied (class %s", ns, name, gw.Spec.GatewayClassName)
	if img := gw.Metadata.Annotations[annotationImage]; img != "" {
		fmt.Fprintf(out, ", image %s", img)
	}
	fmt.Fprintln(out, ")")
	if o.wait {
		if err := waitProgrammed(ctx, c, gwPath, o.waitTimeout); err != nil {
			return fmt.Errorf("apply: waypoint %s/%s: %w", ns, name, err)
		}
		fmt.Fprintf(out, "waypoint %s/%s is ready (Programmed)\n", ns, name)
	}
	if o.enrollNamespace {
		patch := map[string]any{"metadata": map[string]any{"labels": map[string]string{labelUseWaypoint: name}}}
		if err := c.MergePatch(ctx, nsPath, patch, applyFieldManager, nil); err != nil {
			return fmt.Errorf("apply: label namespace %s: %w", ns, err)
		}
		fmt.Fprintf(out, "namespace %s labeled with \"%s: %s\"\n", ns, labelUseWaypoint, name)
	}
	return nil
}

// waitProgrammed polls the Gateway at path every second until its
// Programmed condition is True, for at most timeout; ctx ending stops it
// too. Errors of a poll are retried; the last one, or the last condition,
// is in the timeout's error.
func waitProgrammed(ctx context.Context, c *kubeapply.Client, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := "no Programmed condition yet"
	for {
		var gw gatewayObject
		if err := c.Get(ctx, path, &gw); err != nil {
			if ctx.Err() == nil { // not the wait's own end cutting the poll short
				last = err.Error()
			}
		} else if gw.Status != nil {
			for _, cond := range gw.Status.Conditions {
				if cond.Type != "Programmed" {
					continue
				}
				if cond.Status == "True" {
					return nil
				}
				last = fmt.Sprintf("Programmed %s, %s: %s", cond.Status, cond.Reason, cond.Message)
			}
		}
		select {
		case <-ctx.Done():
			if context.Cause(ctx) == context.DeadlineExceeded {
				return fmt.Errorf("not Programmed after %v (%s)", timeout, last)
			}
			return fmt.Errorf("stopped while waiting to be Programmed (%s)", last)
		case <-tick.C:
		}
	}
}
