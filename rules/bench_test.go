package rules

import (
	"fmt"
	"strings"
	"testing"
)

// benchBody returns a body {"users":[...]} of about size bytes whose users array has
// matches elements, each with an "email" member, padded with other members.
func benchBody(size, matches int) []byte {
	var b strings.Builder
	b.WriteString(`{"meta":{"page":1,"total":`)
	fmt.Fprintf(&b, "%d", matches)
	b.WriteString(`},"users":[`)
	perUser := size / matches
	for i := range matches {
		if i > 0 {
			b.WriteByte(',')
		}
		start := b.Len()
		fmt.Fprintf(&b, `{"id":%d,"email":"user%d@example.com","active":true,"name":"`, i, i)
		pad := perUser - (b.Len() - start) - 3
		if pad > 0 {
			b.WriteString(strings.Repeat("x", pad))
		}
		b.WriteString(`"}`)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func benchmarkRewrite(b *testing.B, body []byte, query string, wantMatches int) {
	q := MustCompile(query)
	replacement := []byte(`"vault_obj_01HZY3K6W2Q9"`)
	var out []byte
	var edits []Edit

	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d, err := Parse(body, Options{})
		if err != nil {
			b.Fatal(err)
		}
		nodes := q.Select(d)
		if len(nodes) != wantMatches {
			b.Fatalf("selected %d nodes, want %d", len(nodes), wantMatches)
		}
		edits = edits[:0]
		for _, n := range Outermost(nodes) {
			edits = append(edits, Edit{Start: n.Start, End: n.End, Value: replacement})
		}
		out = Splice(out[:0], body, edits)
		d.Release()
	}
}

func BenchmarkRewrite1KB(b *testing.B) {
	benchmarkRewrite(b, benchBody(1<<10, 10), "$.users[*].email", 10)
}

func BenchmarkRewrite100KB(b *testing.B) {
	benchmarkRewrite(b, benchBody(100<<10, 1000), "$.users[*].email", 1000)
}

func BenchmarkRewrite1MB(b *testing.B) {
	benchmarkRewrite(b, benchBody(1<<20, 20000), "$.users[*].email", 20000)
}

func BenchmarkRewriteFilter100KB(b *testing.B) {
	benchmarkRewrite(b, benchBody(100<<10, 1000), "$.users[?@.active==true && @.id>=0].email", 1000)
}

func BenchmarkParse100KB(b *testing.B) {
	body := benchBody(100<<10, 1000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d, err := Parse(body, Options{})
		if err != nil {
			b.Fatal(err)
		}
		d.Release()
	}
}
