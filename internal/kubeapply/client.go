package kubeapply

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// RequestTimeout bounds each request of a Client, its answer read whole.
const RequestTimeout = 30 * time.Second

// maxBody is the largest answer read; a single object is far below it.
const maxBody = 8 << 20

// Client sends requests to the API server of a Config. It is safe for
// concurrent use; its idle connections are closed by CloseIdle.
type Client struct {
	cfg  *Config
	base *url.URL
	hc   *http.Client
	// UserAgent is sent with every request; set it before the first.
	UserAgent string
}

// New returns a client for cfg (which it keeps; cfg is not changed).
func New(cfg *Config) (*Client, error) {
	base, err := url.Parse(cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", cfg.Server, err)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     cfg.TLS.Clone(),
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
	}
	if cfg.ProxyURL != nil {
		tr.Proxy = http.ProxyURL(cfg.ProxyURL)
	}
	return &Client{cfg: cfg, base: base, hc: &http.Client{Transport: tr, Timeout: RequestTimeout}, UserAgent: "waypoint"}, nil
}

// CloseIdle closes the client's idle connections.
func (c *Client) CloseIdle() { c.hc.CloseIdleConnections() }

// Path is the REST path of an object (name set) or of its collection
// (name ""): /api/v1/... for the core group's apiVersion "v1",
// /apis/GROUP/VERSION/... otherwise; namespace "" for a cluster-scoped
// resource. resource is the plural, lower-case name (e.g. "gateways").
func Path(apiVersion, resource, namespace, name string) string {
	p := "/apis/" + apiVersion
	if !strings.Contains(apiVersion, "/") {
		p = "/api/" + apiVersion
	}
	if namespace != "" {
		p += "/namespaces/" + url.PathEscape(namespace)
	}
	p += "/" + resource
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// Get reads the object at path into out (JSON-decoded).
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, "", nil, out)
}

// ApplyOptions are a server-side apply's query parameters.
type ApplyOptions struct {
	// FieldManager owns the fields applied (required).
	FieldManager string
	// Force takes over fields another manager set to another value;
	// without it such an apply fails with a Conflict naming them.
	Force bool
}

// Apply server-side applies obj (marshalled to YAML; it must carry
// apiVersion, kind and metadata.name) at path, the object's own path, and
// decodes the object the server then holds into out when out is not nil.
func (c *Client) Apply(ctx context.Context, path string, obj any, o ApplyOptions, out any) error {
	if o.FieldManager == "" {
		return errors.New("apply: no field manager")
	}
	body, err := yaml.Marshal(obj)
	if err != nil {
		return err
	}
	q := url.Values{"fieldManager": {o.FieldManager}}
	if o.Force {
		q.Set("force", "true")
	}
	return c.do(ctx, http.MethodPatch, path, q, "application/apply-patch+yaml", body, out)
}

// MergePatch applies a JSON merge patch (RFC 7386; patch is
// JSON-marshalled) to the object at path, recorded for fieldManager, and
// decodes the result into out when out is not nil.
func (c *Client) MergePatch(ctx context.Context, path string, patch any, fieldManager string, out any) error {
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPatch, path, url.Values{"fieldManager": {fieldManager}}, "application/merge-patch+json", body, out)
}

// do sends one request and decodes a 2xx answer into out, or returns the
// answer's Status as a *StatusError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, out any) error {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.UserAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if err := c.authorize(req); err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return statusError(method, path, resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer: %w", method, path, err)
	}
	return nil
}

// authorize adds the config's credentials to req: the token file's token
// (read now), else the token, else basic credentials. A client
// certificate is in the TLS config.
func (c *Client) authorize(req *http.Request) error {
	tok := c.cfg.Token
	if c.cfg.TokenFile != "" {
		b, err := os.ReadFile(c.cfg.TokenFile)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	switch {
	case tok != "":
		req.Header.Set("Authorization", "Bearer "+tok)
	case c.cfg.Username != "" || c.cfg.Password != "":
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	return nil
}

// StatusError is a request the API server refused: its Status object's
// reason and message, or the HTTP status and the answer's start when the
// answer is not a Status.
type StatusError struct {
	Method, Path string
	Code         int    // the HTTP status
	Reason       string // the Status's reason (NotFound, Conflict, Invalid, Forbidden...), "" if none
	Message      string // the Status's message, else the answer's text
}

func (e *StatusError) Error() string {
	what := http.StatusText(e.Code)
	if e.Reason != "" {
		what = e.Reason
	}
	return fmt.Sprintf("the API server answered %d %s: %s", e.Code, what, e.Message)
}

// status is the part of a metav1.Status read.
type status struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
}

func statusError(method, path string, resp *http.Response, data []byte) error {
	e := &StatusError{Method: method, Path: path, Code: resp.StatusCode}
	var s status
	if json.Unmarshal(data, &s) == nil && s.Kind == "Status" {
		e.Reason, e.Message = s.Reason, s.Message
	}
	if e.Message == "" {
		const max = 512
		text := strings.TrimSpace(string(data))
		if len(text) > max {
			text = text[:max] + "..."
		}
		e.Message = fmt.Sprintf("%s %s: %q", method, path, text)
	}
	return e
}

// IsNotFound reports whether err is the API server's 404.
func IsNotFound(err error) bool { return codeIs(err, http.StatusNotFound) }

// IsConflict reports whether err is the API server's 409 (a server-side
// apply's field conflict among them).
func IsConflict(err error) bool { return codeIs(err, http.StatusConflict) }

func codeIs(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}
