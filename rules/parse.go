package rules

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Error reasons of Parse. They are fixed phrases so that an error never echoes the body.
const (
	reasonEOF           = "unexpected end of input"
	reasonBOM           = "byte order mark"
	reasonTooLarge      = "document larger than 2 GiB"
	reasonValue         = "expected value"
	reasonTrailing      = "trailing data after value"
	reasonTrailingComma = "trailing comma"
	reasonArrayNext     = "expected ',' or ']'"
	reasonObjectNext    = "expected ',' or '}'"
	reasonName          = "expected member name"
	reasonColon         = "expected ':' after member name"
	reasonDuplicate     = "duplicate member name"
	reasonNULName       = "NUL in member name"
	reasonLiteral       = "invalid literal"
	reasonNumber        = "invalid number"
	reasonLeadingZero   = "leading zero in number"
	reasonControl       = "control character in string"
	reasonEscape        = "invalid escape"
	reasonUnicodeEscape = "invalid \\u escape"
	reasonSurrogate     = "lone surrogate in \\u escape"
	reasonUTF8          = "invalid UTF-8"
)

// smallObject is the number of members up to which each new member name is compared with
// the previous ones. Larger objects keep their names in a map.
const smallObject = 16

// Parse validates data strictly and builds a structural index for selection.
//
// Parse accepts exactly the RFC 8259 grammar: one value, optionally surrounded by the four
// JSON whitespace characters, with no byte order mark, comments or trailing commas. It
// also rejects what common parsers read differently: invalid UTF-8, \u escapes with a lone
// or mis-paired surrogate, duplicate member names in one object after unescaping, member
// names with an escaped NUL, and nesting deeper than opts.MaxDepth. Errors are *SyntaxError.
//
// The returned Document refers to data without copying it.
func Parse(data []byte, opts Options) (*Document, error) {
	tape, err := index(data, opts)
	if err != nil {
		return nil, err
	}
	return &Document{data: data, tape: tape}, nil
}

// Validate checks data as Parse does, without keeping the index, for a caller that only
// needs to know whether data is one strict JSON value.
func Validate(data []byte, opts Options) error {
	if isPlainString(data) {
		return nil
	}
	tape, err := index(data, opts)
	if err != nil {
		return err
	}
	putTape(tape)
	return nil
}

// isPlainString reports whether data is a JSON string without escapes: a quote, valid
// UTF-8 without quotes, backslashes or control characters, and a quote. Most revealed
// values are such strings, and this check takes a third of the time of a parse (19 ns
// against 57 for a 20-byte string).
func isPlainString(data []byte) bool {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return false
	}
	inner := data[1 : len(data)-1]
	for _, c := range inner {
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.Valid(inner)
}

// index parses data into its structural index. Its error is a *SyntaxError.
func index(data []byte, opts Options) ([]entry, error) {
	maxDepth := opts.MaxDepth
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if len(data) > maxDocumentSize {
		return nil, &SyntaxError{Offset: maxDocumentSize, Reason: reasonTooLarge}
	}

	// the index grows with the body, but a body that fails early (such as one of
	// millions of '[') must not allocate in proportion to its size first
	sc := scratchPool.Get().(*scratch)
	p := parser{data: data, maxDepth: maxDepth, scratch: *sc}
	p.tape = getTape(min(len(data)/8+4, 1<<15))
	err := p.run()

	// the parser works on a copy, so that its loops reach the slices without a pointer
	*sc = p.scratch
	sc.keep()
	if err != nil {
		putTape(p.tape)
		return nil, err
	}
	return p.tape, nil
}

// scratch is the working memory of a parser besides its index. Growing it anew for
// each body was most of the allocations of parsing a small one.
type scratch struct {
	stack []frame

	// names is a stack of the member names of the open objects, for duplicate detection.
	// Escaped names are unescaped into arena.
	names []nameRef
	arena []byte
	spare []map[string]struct{}
}

// scratchPool keeps scratch between Parse calls.
var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// maxPooledScratch is the length above which a scratch slice is dropped instead of
// pooled, so that one deep or wide body does not pin its memory.
const maxPooledScratch = 1 << 12

// keep empties sc and returns it to the pool. The name sets of large objects are dropped,
// because a cleared map keeps the memory of its largest size.
func (sc *scratch) keep() {
	clear(sc.stack)
	sc.stack = sc.stack[:0]
	sc.names = sc.names[:0]
	sc.arena = sc.arena[:0]
	clear(sc.spare)
	sc.spare = sc.spare[:0]
	if cap(sc.stack) > maxPooledScratch || cap(sc.names) > maxPooledScratch ||
		cap(sc.arena) > maxPooledScratch {
		return
	}
	scratchPool.Put(sc)
}

// Release returns the document's index to a pool that later Parse calls reuse, which
// saves an allocation per body. The Document must not be used after Release, but Nodes
// taken from it stay valid. Calling Release is optional.
func (d *Document) Release() {
	putTape(d.tape)
	d.tape = nil
	d.data = nil
}

// tapePool holds index buffers for reuse, each in a *[]entry box, because putting a bare
// slice into a sync.Pool allocates its header. boxPool keeps the empty boxes. Buffers
// over maxPooledTape entries are left to the garbage collector, so that one large body
// does not pin its memory.
var tapePool, boxPool sync.Pool

const maxPooledTape = 1 << 20

func getTape(capacity int) []entry {
	box, ok := tapePool.Get().(*[]entry)
	if !ok {
		return make([]entry, 0, capacity)
	}
	t := (*box)[:0]
	*box = nil
	boxPool.Put(box)
	return t
}

func putTape(t []entry) {
	if cap(t) == 0 || cap(t) > maxPooledTape {
		return
	}
	box, ok := boxPool.Get().(*[]entry)
	if !ok {
		box = new([]entry)
	}
	*box = t[:0]
	tapePool.Put(box)
}

// grow doubles the capacity of the index. append alone grows large slices by about a
// quarter at a time, which copies a large index several times.
func (p *parser) grow() {
	p.tape = slices.Grow(p.tape, max(cap(p.tape), 64))
}

// parser holds the state of one Parse call.
type parser struct {
	data     []byte
	maxDepth int
	tape     []entry
	scratch

	// the member name that member read last
	keyStart, keyEnd int32
	keyEscaped       bool
}

// frame is an open array or object.
type frame struct {
	entry     int32
	object    bool
	names     int32               // start of this object's names in parser.names
	arena     int32               // length of parser.arena when the object opened
	nameCount int32               // members so far
	nameSet   map[string]struct{} // set of member names once there are more than smallObject
}

// nameRef is a member name: data[start:end], or arena[start:end] when inArena.
type nameRef struct {
	start, end int32
	inArena    bool
}

func syntaxErr(off int, reason string) *SyntaxError {
	return &SyntaxError{Offset: int64(off), Reason: reason}
}

// run is the scanner: one pass over p.data, index driven, with an explicit stack in place
// of recursion. Each turn of the outer loop reads one value at i, which must not be
// whitespace. An opening bracket pushes a frame and an index entry, whose end and next
// are set when the bracket closes. After each complete value, the inner loop consumes
// closing brackets and commas until another value is due or the top-level value is done.
func (p *parser) run() *SyntaxError {
	data := p.data
	n := len(data)
	if n >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF {
		return syntaxErr(0, reasonBOM)
	}
	i := skipWS(data, 0)

	// pending member name for the next value
	var keyStart, keyEnd int32
	var keyFlags uint8

	for {
		if i >= n {
			return syntaxErr(n, reasonEOF)
		}
		start := i
		var kind Kind
		var flags uint8
		switch c := data[i]; c {
		case '{', '[':
			if len(p.stack) >= p.maxDepth {
				return syntaxErr(i, "nesting deeper than "+strconv.Itoa(p.maxDepth))
			}
			idx := int32(len(p.tape))
			containerKind := Array
			if c == '{' {
				containerKind = Object
			}
			if len(p.tape) == cap(p.tape) {
				p.grow()
			}
			p.tape = append(p.tape, entry{start: int32(i), kind: containerKind, flags: keyFlags,
				keyStart: keyStart, keyEnd: keyEnd})
			p.stack = append(p.stack, frame{entry: idx, object: c == '{',
				names: int32(len(p.names)), arena: int32(len(p.arena))})
			i = skipWS(data, i+1)
			if i < n && data[i] == c+2 { // ']' is '['+2 and '}' is '{'+2
				p.close(i)
				i++
				break
			}
			keyStart, keyEnd, keyFlags = 0, 0, 0
			if c == '{' {
				var err *SyntaxError
				if i, err = p.member(i); err != nil {
					return err
				}
				keyStart, keyEnd, keyFlags = p.pendingKey()
			}
			continue
		case '"':
			end, escaped, err := scanString(data, i)
			if err != nil {
				return err
			}
			kind = String
			if escaped {
				flags = flagValueEscaped
			}
			i = end
		case 't':
			if n-i < 4 || string(data[i:i+4]) != "true" {
				return syntaxErr(i, reasonLiteral)
			}
			kind, i = True, i+4
		case 'f':
			if n-i < 5 || string(data[i:i+5]) != "false" {
				return syntaxErr(i, reasonLiteral)
			}
			kind, i = False, i+5
		case 'n':
			if n-i < 4 || string(data[i:i+4]) != "null" {
				return syntaxErr(i, reasonLiteral)
			}
			kind, i = Null, i+4
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			end, err := scanNumber(data, i)
			if err != nil {
				return err
			}
			kind, i = Number, end
		default:
			return syntaxErr(i, reasonValue)
		}
		if kind != 0 {
			if len(p.tape) == cap(p.tape) {
				p.grow()
			}
			p.tape = append(p.tape, entry{start: int32(start), end: int32(i),
				next: int32(len(p.tape) + 1), kind: kind, flags: keyFlags | flags,
				keyStart: keyStart, keyEnd: keyEnd})
		}

		// a value is complete: close containers and consume a comma
		for {
			i = skipWS(data, i)
			if len(p.stack) == 0 {
				if i != n {
					return syntaxErr(i, reasonTrailing)
				}
				return nil
			}
			if i >= n {
				return syntaxErr(n, reasonEOF)
			}
			top := &p.stack[len(p.stack)-1]
			c := data[i]
			if c == ',' {
				i = skipWS(data, i+1)
				break
			}
			if top.object && c == '}' || !top.object && c == ']' {
				p.close(i)
				i++
				continue
			}
			if top.object {
				return syntaxErr(i, reasonObjectNext)
			}
			return syntaxErr(i, reasonArrayNext)
		}

		// after a comma: the next element or member
		top := &p.stack[len(p.stack)-1]
		if i < n && (data[i] == ']' || data[i] == '}') {
			return syntaxErr(i, reasonTrailingComma)
		}
		keyStart, keyEnd, keyFlags = 0, 0, 0
		if top.object {
			var err *SyntaxError
			if i, err = p.member(i); err != nil {
				return err
			}
			keyStart, keyEnd, keyFlags = p.pendingKey()
		}
	}
}

// close ends the innermost container at the closing bracket data[i].
func (p *parser) close(i int) {
	top := &p.stack[len(p.stack)-1]
	e := &p.tape[top.entry]
	e.end = int32(i + 1)
	e.next = int32(len(p.tape))
	if top.nameSet != nil {
		clear(top.nameSet)
		p.spare = append(p.spare, top.nameSet)
	}
	p.names = p.names[:top.names]
	p.arena = p.arena[:top.arena]
	p.stack = p.stack[:len(p.stack)-1]
}

// member reads a member name, the colon and the whitespace after it, starting at data[i],
// and records the name as the pending key. It returns the offset of the member's value.
func (p *parser) member(i int) (int, *SyntaxError) {
	data := p.data
	if i >= len(data) {
		return i, syntaxErr(i, reasonEOF)
	}
	if data[i] != '"' {
		return i, syntaxErr(i, reasonName)
	}
	end, escaped, err := scanString(data, i)
	if err != nil {
		return i, err
	}
	if escaped && escapesNUL(data[i+1:end-1]) {
		// C-string parsers and databases end the name at NUL, where it may become a
		// rule's name
		return i, syntaxErr(i, reasonNULName)
	}
	if p.addName(i, end, escaped) {
		return i, syntaxErr(i, reasonDuplicate)
	}
	p.keyStart, p.keyEnd, p.keyEscaped = int32(i+1), int32(end-1), escaped

	j := skipWS(data, end)
	if j >= len(data) {
		return j, syntaxErr(j, reasonEOF)
	}
	if data[j] != ':' {
		return j, syntaxErr(j, reasonColon)
	}
	return skipWS(data, j+1), nil
}

// addName records the member name in data[start:end] (with quotes) for the innermost
// object and reports whether the object already has a member of that name.
func (p *parser) addName(start, end int, escaped bool) bool {
	top := &p.stack[len(p.stack)-1]
	ref := nameRef{start: int32(start + 1), end: int32(end - 1)}
	if escaped {
		base := len(p.arena)
		p.arena = appendUnescaped(p.arena, p.data[start+1:end-1])
		ref = nameRef{start: int32(base), end: int32(len(p.arena)), inArena: true}
	}
	name := p.nameBytes(ref)
	top.nameCount++

	if top.nameSet != nil {
		if _, ok := top.nameSet[string(name)]; ok {
			return true
		}
		top.nameSet[string(name)] = struct{}{}
		return false
	}
	for _, prev := range p.names[top.names:] {
		if bytes.Equal(p.nameBytes(prev), name) {
			return true
		}
	}
	if top.nameCount <= smallObject {
		p.names = append(p.names, ref)
		return false
	}

	// the object has grown large: move its names into a set
	top.nameSet = p.takeSet()
	for _, prev := range p.names[top.names:] {
		top.nameSet[string(p.nameBytes(prev))] = struct{}{}
	}
	top.nameSet[string(name)] = struct{}{}
	p.names = p.names[:top.names]
	return false
}

func (p *parser) takeSet() map[string]struct{} {
	if k := len(p.spare); k > 0 {
		m := p.spare[k-1]
		p.spare = p.spare[:k-1]
		return m
	}
	return make(map[string]struct{}, 2*smallObject)
}

func (p *parser) nameBytes(r nameRef) []byte {
	if r.inArena {
		return p.arena[r.start:r.end]
	}
	return p.data[r.start:r.end]
}

// pendingKey returns the key fields of the entry for the member value that follows.
func (p *parser) pendingKey() (start, end int32, flags uint8) {
	flags = flagMember
	if p.keyEscaped {
		flags |= flagKeyEscaped
	}
	return p.keyStart, p.keyEnd, flags
}

// skipWS returns the offset of the first byte at or after i that is not JSON whitespace.
func skipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanNumber returns the end of the RFC 8259 number that starts at data[i].
func scanNumber(data []byte, i int) (int, *SyntaxError) {
	n := len(data)
	start := i
	if data[i] == '-' {
		i++
	}
	switch {
	case i >= n:
		return i, syntaxErr(i, reasonEOF)
	case data[i] == '0':
		i++
		if i < n && isDigit(data[i]) {
			return i, syntaxErr(start, reasonLeadingZero)
		}
	case isDigit(data[i]):
		for i < n && isDigit(data[i]) {
			i++
		}
	default:
		return i, syntaxErr(i, reasonNumber)
	}
	if i < n && data[i] == '.' {
		i++
		if i >= n || !isDigit(data[i]) {
			return i, syntaxErr(i, reasonNumber)
		}
		for i < n && isDigit(data[i]) {
			i++
		}
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= n || !isDigit(data[i]) {
			return i, syntaxErr(i, reasonNumber)
		}
		for i < n && isDigit(data[i]) {
			i++
		}
	}
	return i, nil
}

func isDigit(c byte) bool {
	return '0' <= c && c <= '9'
}

// escapesNUL reports whether the raw string content s, already validated, has a \u0000
// escape.
func escapesNUL(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if s[i+1] == 'u' && string(s[i+2:i+6]) == "0000" {
			return true
		}
		i++ // skip the escaped character, so an escaped backslash is not read again
	}
	return false
}
