package clickupfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// SpecRelPath is where ClickUp's published OpenAPI description sits, relative to the directory that
// holds the repository (the "shared" folder beside it). It is reference data: read, never copied.
const SpecRelPath = "shared/api-specs/clickup/clickup-api-v2-reference.json"

// SpecEnv overrides the spec's location.
const SpecEnv = "CLICKUP_OPENAPI_SPEC"

// FindSpec looks for the spec from the working directory upwards (tests run in their package's
// directory); "" when it is nowhere.
func FindSpec() string {
	if p := os.Getenv(SpecEnv); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		return ""
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, SpecRelPath)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Validator checks requests against the OpenAPI 3.1 description.
type Validator struct {
	Path string
	doc  *openapi3.T
}

var (
	specOnce sync.Once
	specVal  *Validator
	specErr  error
)

// LoadSpec loads the spec once per process; (nil, nil) when it is absent.
func LoadSpec() (*Validator, error) {
	specOnce.Do(func() {
		p := FindSpec()
		if p == "" {
			return
		}
		l := openapi3.NewLoader()
		doc, err := l.LoadFromFile(p)
		if err != nil {
			specErr = fmt.Errorf("load %s: %w", p, err)
			return
		}
		// The published document does not pass kin-openapi's whole-document validation (some
		// examples contradict their schemas), so it is not validated as a whole and routes are
		// matched here rather than through kin-openapi's router, which insists on it.
		specVal = &Validator{Path: p, doc: doc}
	})
	return specVal, specErr
}

// route finds the operation of method and an /api/v2/… path.
func (v *Validator) route(method, path string) (*routers.Route, map[string]string, bool) {
	specPath := strings.TrimPrefix(path, "/api")
	segs := strings.Split(strings.Trim(specPath, "/"), "/")
	type cand struct {
		tmpl     string
		params   map[string]string
		literals int
	}
	var found []cand
	for tmpl, item := range v.doc.Paths.Map() {
		if item.GetOperation(method) == nil {
			continue
		}
		ts := strings.Split(strings.Trim(tmpl, "/"), "/")
		if len(ts) != len(segs) {
			continue
		}
		c := cand{tmpl: tmpl, params: map[string]string{}}
		ok := true
		for i, t := range ts {
			if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
				c.params[t[1:len(t)-1]] = segs[i]
				continue
			}
			if t != segs[i] {
				ok = false
				break
			}
			c.literals++
		}
		if ok {
			found = append(found, c)
		}
	}
	if len(found) == 0 {
		return nil, nil, false
	}
	sort.Slice(found, func(i, j int) bool { return found[i].literals > found[j].literals })
	best := found[0]
	item := v.doc.Paths.Value(best.tmpl)
	return &routers.Route{Spec: v.doc, Path: best.tmpl, PathItem: item, Method: method, Operation: item.GetOperation(method)}, best.params, true
}

// Check validates one request (path, query, body) and, for JSON bodies, refuses top-level fields
// the operation does not declare: ClickUp ignores unknown fields, so a misspelt one would be lost
// silently in production.
func (v *Validator) Check(r *http.Request, body []byte) error {
	route, params, ok := v.route(r.Method, r.URL.Path)
	if !ok {
		return fmt.Errorf("%s %s is not an operation of the ClickUp API v2 description", r.Method, r.URL.Path)
	}
	clone := r.Clone(context.Background())
	clone.Body = io.NopCloser(bytes.NewReader(body))
	in := &openapi3filter.RequestValidationInput{
		Request: clone, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: false},
	}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s (%s %s): %s", r.Method, r.URL.Path, r.Method, route.Path, firstLine(err.Error()))
	}
	rb := route.Operation.RequestBody
	if len(body) == 0 || rb == nil || rb.Value == nil {
		return nil
	}
	mt := rb.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return nil
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return nil // not an object: ValidateRequest has judged it already
	}
	for k := range top {
		if _, ok := mt.Schema.Value.Properties[k]; !ok {
			return fmt.Errorf("%s %s: field %q is not in the %s request schema", r.Method, r.URL.Path, k, route.Path)
		}
	}
	return nil
}

func firstLine(s string) string {
	// kin-openapi appends the whole schema to its message; the first lines say what is wrong.
	lines := strings.Split(s, "\n")
	if len(lines) > 3 {
		lines = lines[:3]
	}
	return strings.TrimSpace(strings.Join(lines, " "))
}
