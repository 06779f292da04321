package caddymodule

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// evasions are request bodies that a parser could read differently from piivault. Each
// plants the marker at a member named email, or one that folds to it.
var evasions = map[string]string{
	"plain":                 `{"email": "PLAINTEXT-MARKER"}`,
	"duplicate":             `{"email": "x", "email": "PLAINTEXT-MARKER"}`,
	"duplicate escaped":     `{"email": "x", "\u0065mail": "PLAINTEXT-MARKER"}`,
	"duplicate in array":    `[{"email": "x", "email": "PLAINTEXT-MARKER"}]`,
	"duplicate container":   `{"user": {"email": "x"}, "user": {"email": "PLAINTEXT-MARKER"}}`,
	"escaped value":         `{"email": "PLAINTEXT-\u004dARKER"}`,
	"folded upper":          `{"EMAIL": "PLAINTEXT-MARKER"}`,
	"folded mixed":          `{"eMail": "PLAINTEXT-MARKER"}`,
	"dotless i":             `{"emaıl": "PLAINTEXT-MARKER"}`,
	"dotted capital i":      `{"emaİl": "PLAINTEXT-MARKER"}`,
	"invalid utf-8 key":     "{\"email\xff\": \"PLAINTEXT-MARKER\", \"email\": \"x\"}",
	"invalid utf-8 value":   "{\"email\": \"PLAINTEXT-MARKER\xc0\"}",
	"lone surrogate":        `{"email": "PLAINTEXT-MARKER\udc00"}`,
	"nul in key":            `{"email\u0000": "PLAINTEXT-MARKER"}`,
	"raw control in string": "{\"email\": \"PLAINTEXT-MARKER\x01\"}",
	"comment":               `{"email": /* c */ "PLAINTEXT-MARKER"}`,
	"single quotes":         `{'email': 'PLAINTEXT-MARKER'}`,
	"trailing comma":        `{"email": "PLAINTEXT-MARKER",}`,
	"bom":                   "\ufeff{\"email\": \"PLAINTEXT-MARKER\"}",
	"nan":                   `{"email": "PLAINTEXT-MARKER", "n": NaN}`,
	"infinity":              `{"email": "PLAINTEXT-MARKER", "n": -Infinity}`,
	"leading zero":          `{"email": "PLAINTEXT-MARKER", "n": 01}`,
	"trailing data":         `{"email": "x"} {"email": "PLAINTEXT-MARKER"}`,
	"second document":       "{\"email\": \"x\"}\n{\"email\": \"PLAINTEXT-MARKER\"}",
	"nbsp whitespace":       "{\"email\":\u00a0\"PLAINTEXT-MARKER\"}",
	"form feed whitespace":  "{\"email\":\f\"PLAINTEXT-MARKER\"}",
	"deep nesting":          strings.Repeat("[", 100) + `{"email": "PLAINTEXT-MARKER"}` + strings.Repeat("]", 100),
	"nested":                `{"a": [{"b": {"email": ["PLAINTEXT-MARKER"]}}]}`,
}

func TestEvasionsNeverForwardMarker(t *testing.T) {
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, localStoreGlobals(t.TempDir()), fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $..email
	}
	reverse_proxy %s`, upstream.hostPort()))

	forwarded := t.TempDir()
	for name, body := range evasions {
		before := len(upstream.received())
		res := s.do("POST", "/", body, "Content-Type: application/json", "X-Organization-Id: org_a")

		got := upstream.received()
		if len(got) == before {
			if strings.Contains(string(res.body), "MARKER") {
				t.Errorf("%s: the rejection echoes the body: %s", name, res.body)
			}
			continue
		}
		file := filepath.Join(forwarded, strings.ReplaceAll(name, " ", "_")+".json")
		if err := os.WriteFile(file, got[len(got)-1].body, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	files, _ := filepath.Glob(filepath.Join(forwarded, "*.json"))
	if len(files) == 0 {
		t.Fatal("no body was forwarded: the parsers have nothing to check")
	}
	t.Run("go", func(t *testing.T) { checkGoParser(t, files) })
	t.Run("node", func(t *testing.T) { checkExternalParser(t, files, "node", "testdata/find_marker.js") })
	t.Run("python", func(t *testing.T) { checkExternalParser(t, files, "python3", "testdata/find_marker.py") })
}

func checkGoParser(t *testing.T, files []string) {
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if goFindsMarker(data) {
			t.Errorf("encoding/json reads the marker at email in %s", filepath.Base(file))
		}
	}
}

// checkExternalParser runs a script that prints each file in which its language's JSON
// parser finds the marker under a member named email.
func checkExternalParser(t *testing.T, files []string, interpreter, script string) {
	if _, err := exec.LookPath(interpreter); err != nil {
		t.Skipf("%s is not installed: %v", interpreter, err)
	}
	out, err := exec.Command(interpreter, append([]string{script}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", interpreter, script, err, out)
	}
	for _, line := range strings.Fields(string(out)) {
		t.Errorf("%s reads the marker at email in %s", interpreter, filepath.Base(line))
	}
}

// upperLower maps each rune to the lower case of its upper case, as case-insensitive
// matching in Java and JavaScript does. It joins dotless ı with i.
func upperLower(s string) string {
	return strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, s)
}

// goFindsMarker reports whether encoding/json, decoding into a struct as Go services
// do, reads the marker at an email field, at any depth the evasions use.
func goFindsMarker(data []byte) bool {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return false
	}
	var walk func(v any, protected bool) bool
	walk = func(v any, protected bool) bool {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if walk(child, protected || strings.EqualFold(k, "email") || upperLower(k) == "email") {
					return true
				}
			}
		case []any:
			for _, child := range v {
				if walk(child, protected) {
					return true
				}
			}
		case string:
			return protected && strings.Contains(v, "PLAINTEXT-MARKER")
		}
		return false
	}
	return walk(v, false)
}
