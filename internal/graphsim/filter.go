package graphsim

import (
	"strconv"
	"strings"
	"unicode"
)

// A parsed $filter expression.
type expr interface{ isExpr() }

type boolExpr struct {
	op   string // and, or
	l, r expr
}

type notExpr struct{ e expr }

type cmpExpr struct {
	prop string
	op   string // eq ne gt ge lt le
	val  lit
}

type inExpr struct {
	prop string
	vals []lit
}

type fnExpr struct {
	fn   string // startswith, endswith
	prop string
	val  lit
}

// anyExpr is a lambda over a string collection: prop/any(v: body), where
// body tests the range variable v.
type anyExpr struct {
	prop string
	v    string
	body expr
}

func (anyExpr) isExpr()  {}
func (boolExpr) isExpr() {}
func (notExpr) isExpr()  {}
func (cmpExpr) isExpr()  {}
func (inExpr) isExpr()   {}
func (fnExpr) isExpr()   {}

type litKind int

const (
	litString litKind = iota
	litBool
	litNull
	litNumber
)

type lit struct {
	kind litKind
	s    string
	b    bool
}

func (l lit) edm() string {
	switch l.kind {
	case litBool:
		return "Edm.Boolean"
	case litNull:
		return "null"
	case litNumber:
		return "Edm.Int32"
	}
	return "Edm.String"
}

type tokKind int

const (
	tkEOF tokKind = iota
	tkIdent
	tkString
	tkNumber
	tkLParen
	tkRParen
	tkComma
	tkColon
)

type token struct {
	kind tokKind
	s    string
	pos  int
}

// filterSyntaxError is a $filter that does not parse.
func filterSyntaxError(pos int, src string) *graphError {
	return odataBadRequest("Invalid filter clause: Syntax error at position " + strconv.Itoa(pos) + " in '" + src + "'.")
}

func lexFilter(src string) ([]token, *graphError) {
	var toks []token
	rs := []rune(src)
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '(':
			toks = append(toks, token{tkLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tkRParen, ")", i})
			i++
		case c == ',':
			toks = append(toks, token{tkComma, ",", i})
			i++
		case c == ':':
			toks = append(toks, token{tkColon, ":", i})
			i++
		case c == '\'':
			start := i
			var b strings.Builder
			i++
			closed := false
			for i < len(rs) {
				if rs[i] == '\'' {
					if i+1 < len(rs) && rs[i+1] == '\'' {
						b.WriteRune('\'')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteRune(rs[i])
				i++
			}
			if !closed {
				return nil, odataBadRequest("Invalid filter clause: There is an unterminated string literal at position " + strconv.Itoa(start) + " in '" + src + "'.")
			}
			toks = append(toks, token{tkString, b.String(), start})
		case c == '-' || unicode.IsDigit(c):
			start := i
			i++
			for i < len(rs) && (unicode.IsDigit(rs[i]) || rs[i] == '.') {
				i++
			}
			toks = append(toks, token{tkNumber, string(rs[start:i]), start})
		case unicode.IsLetter(c) || c == '_' || c == '$':
			start := i
			for i < len(rs) && (unicode.IsLetter(rs[i]) || unicode.IsDigit(rs[i]) || rs[i] == '_' || rs[i] == '/' || rs[i] == '$' || rs[i] == '.' || rs[i] == '-') {
				i++
			}
			toks = append(toks, token{tkIdent, string(rs[start:i]), start})
		default:
			return nil, filterSyntaxError(i, src)
		}
	}
	return append(toks, token{tkEOF, "", len(rs)}), nil
}

type filterParser struct {
	src   string
	toks  []token
	i     int
	depth int
}

const maxFilterDepth = 64

// maxBasicLiteral is the longest value `eq` (and in/startsWith) matches
// without advanced query mode, per Graph's documented query limitations.
const maxBasicLiteral = 120

// parseFilter parses a $filter value. It never panics: every malformed input
// is a 400 BadRequest.
func parseFilter(src string) (expr, *graphError) {
	toks, err := lexFilter(src)
	if err != nil {
		return nil, err
	}
	p := &filterParser{src: src, toks: toks}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tkEOF {
		return nil, p.fail()
	}
	return e, nil
}

func (p *filterParser) peek() token { return p.toks[p.i] }
func (p *filterParser) next() token {
	t := p.toks[p.i]
	if t.kind != tkEOF {
		p.i++
	}
	return t
}
func (p *filterParser) fail() *graphError { return filterSyntaxError(p.peek().pos, p.src) }

func (p *filterParser) isWord(w string) bool {
	t := p.peek()
	return t.kind == tkIdent && t.s == w
}

func (p *filterParser) expect(k tokKind) (token, *graphError) {
	if p.peek().kind != k {
		return token{}, p.fail()
	}
	return p.next(), nil
}

func (p *filterParser) or() (expr, *graphError) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxFilterDepth {
		return nil, odataBadRequest("Invalid filter clause: The recursion depth of the filter exceeds the maximum of " + strconv.Itoa(maxFilterDepth) + ".")
	}
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = boolExpr{"or", l, r}
	}
	return l, nil
}

func (p *filterParser) and() (expr, *graphError) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		p.next()
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = boolExpr{"and", l, r}
	}
	return l, nil
}

func (p *filterParser) unary() (expr, *graphError) {
	if p.isWord("not") {
		p.next()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxFilterDepth {
			return nil, odataBadRequest("Invalid filter clause: The recursion depth of the filter exceeds the maximum of " + strconv.Itoa(maxFilterDepth) + ".")
		}
		e, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notExpr{e}, nil
	}
	return p.primary()
}

func (p *filterParser) primary() (expr, *graphError) {
	t := p.peek()
	switch t.kind {
	case tkLParen:
		p.next()
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tkRParen); err != nil {
			return nil, err
		}
		return e, nil
	case tkIdent:
	default:
		return nil, p.fail()
	}
	p.next()
	if p.peek().kind == tkLParen { // function call
		fn := strings.ToLower(t.s)
		if prop, ok := strings.CutSuffix(t.s, "/any"); ok && !strings.Contains(prop, "/") && prop != "" {
			return p.lambda(prop)
		}
		if strings.Contains(fn, "/") {
			return nil, unsupportedQuery("Unsupported query.")
		}
		if fn != "startswith" && fn != "endswith" {
			return nil, odataBadRequest("Invalid filter clause: An unknown function with name '" + t.s + "' was found.")
		}
		p.next()
		prop, err := p.expect(tkIdent)
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tkComma); err != nil {
			return nil, err
		}
		v, err := p.literal()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tkRParen); err != nil {
			return nil, err
		}
		// startsWith(x,'a') eq true is accepted as Graph does.
		if p.isWord("eq") && p.toks[p.i+1].kind == tkIdent && (p.toks[p.i+1].s == "true" || p.toks[p.i+1].s == "false") {
			p.next()
			b := p.next().s == "true"
			var e expr = fnExpr{fn, prop.s, v}
			if !b {
				e = notExpr{e}
			}
			return e, nil
		}
		return fnExpr{fn, prop.s, v}, nil
	}
	op := p.next()
	if op.kind != tkIdent {
		return nil, filterSyntaxError(op.pos, p.src)
	}
	switch op.s {
	case "eq", "ne", "gt", "ge", "lt", "le":
		v, err := p.literal()
		if err != nil {
			return nil, err
		}
		return cmpExpr{t.s, op.s, v}, nil
	case "in":
		if _, err := p.expect(tkLParen); err != nil {
			return nil, err
		}
		var vals []lit
		for {
			v, err := p.literal()
			if err != nil {
				return nil, err
			}
			vals = append(vals, v)
			if p.peek().kind == tkComma {
				p.next()
				continue
			}
			if _, err := p.expect(tkRParen); err != nil {
				return nil, err
			}
			return inExpr{t.s, vals}, nil
		}
	}
	return nil, filterSyntaxError(op.pos, p.src)
}

// lambda parses the rest of prop/any(v: body). The body is one comparison
// or function on v; checkFilter decides which are allowed.
func (p *filterParser) lambda(prop string) (expr, *graphError) {
	p.next() // (
	v, err := p.expect(tkIdent)
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tkColon); err != nil {
		return nil, err
	}
	p.depth++
	defer func() { p.depth-- }()
	body, err := p.or()
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tkRParen); err != nil {
		return nil, err
	}
	return anyExpr{prop: prop, v: v.s, body: body}, nil
}

func (p *filterParser) literal() (lit, *graphError) {
	t := p.next()
	switch t.kind {
	case tkString:
		return lit{kind: litString, s: t.s}, nil
	case tkNumber:
		if _, err := strconv.ParseFloat(t.s, 64); err != nil {
			return lit{}, filterSyntaxError(t.pos, p.src)
		}
		return lit{kind: litNumber, s: t.s}, nil
	case tkIdent:
		switch t.s {
		case "true", "false":
			return lit{kind: litBool, b: t.s == "true"}, nil
		case "null":
			return lit{kind: litNull}, nil
		}
	}
	return lit{}, filterSyntaxError(t.pos, p.src)
}

// checkFilter resolves property names in e against d and enforces which
// operators Graph takes on which property, in basic or advanced mode.
// It returns the expression with canonical property names.
func checkFilter(e expr, d *entityDef, advanced bool, delta bool) (expr, *graphError) {
	unsupported := func(prop string) *graphError {
		return unsupportedQuery("Unsupported or invalid query filter clause specified for property '" + prop + "' of resource '" + d.resource + "'.")
	}
	resolve := func(name, op string) (string, propDef, *graphError) {
		n, def, ok := d.canonical(name)
		if !ok {
			if strings.Contains(name, "/") {
				return "", def, unsupportedQuery("Unsupported query.")
			}
			return "", def, d.noSuchProperty(name)
		}
		if delta {
			if n != "id" || op != "eq" {
				return "", def, unsupportedQuery("Unsupported query.")
			}
			return n, def, nil
		}
		if def.filter == fNone || def.typ == pStrings || def.typ == pObject {
			return "", def, unsupported(n)
		}
		basicOp := op == "eq" || op == "in" || op == "startswith"
		if def.filter == fAdv || !basicOp {
			if !advanced {
				return "", def, unsupported(n)
			}
		}
		if op == "endswith" && !def.endsWith {
			return "", def, unsupported(n)
		}
		if op == "startswith" && def.typ == pBool {
			return "", def, unsupported(n)
		}
		return n, def, nil
	}
	typeCheck := func(n string, def propDef, v lit, op string) *graphError {
		switch {
		case !advanced && !delta && v.kind == litString && len([]rune(v.s)) > maxBasicLiteral:
			// Graph's known limit: eq values up to 120 characters outside advanced mode.
			return unsupportedQuery("Unsupported or invalid query filter clause specified for property '" + n + "' of resource '" + d.resource + "'.")
		case v.kind == litNull:
			if !advanced {
				return unsupportedQuery("Unsupported Query.")
			}
			return nil
		case def.typ == pBool && v.kind != litBool, def.typ != pBool && v.kind != litString:
			return odataBadRequest("Invalid filter clause: A binary operator with incompatible types was detected. Found operand types '" + def.typ.edm() + "' and '" + v.edm() + "' for operator kind '" + op + "'.")
		}
		return nil
	}
	var walk func(e expr) (expr, *graphError)
	walk = func(e expr) (expr, *graphError) {
		switch x := e.(type) {
		case boolExpr:
			if delta && x.op == "and" {
				return nil, unsupportedQuery("Unsupported query.")
			}
			l, err := walk(x.l)
			if err != nil {
				return nil, err
			}
			r, err := walk(x.r)
			if err != nil {
				return nil, err
			}
			return boolExpr{x.op, l, r}, nil
		case notExpr:
			if !advanced || delta {
				return nil, unsupportedQuery("Unsupported Query.")
			}
			in, err := walk(x.e)
			if err != nil {
				return nil, err
			}
			return notExpr{in}, nil
		case cmpExpr:
			n, def, err := resolve(x.prop, x.op)
			if err != nil {
				return nil, err
			}
			if err := typeCheck(n, def, x.val, x.op); err != nil {
				return nil, err
			}
			if def.typ == pBool && x.op != "eq" && x.op != "ne" {
				return nil, unsupported(n)
			}
			return cmpExpr{n, x.op, x.val}, nil
		case inExpr:
			n, def, err := resolve(x.prop, "in")
			if err != nil {
				return nil, err
			}
			for _, v := range x.vals {
				if err := typeCheck(n, def, v, "in"); err != nil {
					return nil, err
				}
			}
			return inExpr{n, x.vals}, nil
		case anyExpr:
			if delta {
				return nil, unsupportedQuery("Unsupported query.")
			}
			return checkLambda(x, d, advanced)
		case fnExpr:
			n, def, err := resolve(x.prop, x.fn)
			if err != nil {
				return nil, err
			}
			if err := typeCheck(n, def, x.val, x.fn); err != nil {
				return nil, err
			}
			if x.val.kind == litNull {
				return nil, unsupported(n)
			}
			return fnExpr{x.fn, n, x.val}, nil
		}
		return nil, unsupportedQuery("Unsupported query.")
	}
	out, err := walk(e)
	if err != nil {
		return nil, err
	}
	if !advanced && !delta {
		if n := orClauses(out); n > 15 {
			return nil, unsupportedQuery("Too many child clauses specified in search filter expression containing 'OR' operators: " + strconv.Itoa(n) + ". Max allowed: 15.")
		}
	}
	return out, nil
}

// checkLambda enforces Graph's rules for prop/any(v: …) on a string
// collection (Microsoft's "Advanced query capabilities" tables): on
// otherMails and proxyAddresses `eq`, `in` and `startsWith` work by default
// and `endsWith` needs advanced query mode; on businessPhones only `eq`
// and `in`. `ne` inside a lambda needs advanced mode, as `not` around it
// does. The body must test the range variable itself with one operator;
// anything else (and/or inside, nested paths such as identities'
// c/issuer, other collections) is refused as unsupported.
func checkLambda(x anyExpr, d *entityDef, advanced bool) (expr, *graphError) {
	n, def, ok := d.canonical(x.prop)
	if !ok {
		return nil, d.noSuchProperty(x.prop)
	}
	unsupported := unsupportedQuery("Unsupported or invalid query filter clause specified for property '" + n + "' of resource '" + d.resource + "'.")
	if def.typ != pStrings || def.lambda == lambdaNone {
		return nil, unsupported
	}
	var op, prop string
	var vals []lit
	switch b := x.body.(type) {
	case cmpExpr:
		op, prop, vals = b.op, b.prop, []lit{b.val}
	case inExpr:
		op, prop, vals = "in", b.prop, b.vals
	case fnExpr:
		op, prop, vals = b.fn, b.prop, []lit{b.val}
	default:
		return nil, unsupported
	}
	if prop != x.v {
		return nil, odataBadRequest("Invalid filter clause: Could not find a property named '" + prop + "' on type 'Edm.String'.")
	}
	switch {
	case op == "eq" || op == "in":
	case op == "startswith" && def.lambda == lambdaStartsWith:
	case op == "endswith" && def.endsWith && advanced:
	case op == "ne" && advanced:
	default:
		return nil, unsupported
	}
	for _, v := range vals {
		if v.kind != litString {
			return nil, odataBadRequest("Invalid filter clause: A binary operator with incompatible types was detected. Found operand types 'Edm.String' and '" + v.edm() + "' for operator kind '" + op + "'.")
		}
		if !advanced && len([]rune(v.s)) > maxBasicLiteral {
			return nil, unsupported
		}
	}
	return anyExpr{prop: n, v: x.v, body: x.body}, nil
}

// orClauses counts the alternatives an expression's or/in operators hold.
func orClauses(e expr) int {
	switch x := e.(type) {
	case boolExpr:
		if x.op == "or" {
			return max(orClauses(x.l), 1) + max(orClauses(x.r), 1)
		}
		return max(orClauses(x.l), orClauses(x.r))
	case inExpr:
		return len(x.vals)
	case notExpr:
		return orClauses(x.e)
	}
	return 0
}

// matches evaluates a checked expression against an object.
func matches(e expr, o *object) bool {
	switch x := e.(type) {
	case boolExpr:
		if x.op == "and" {
			return matches(x.l, o) && matches(x.r, o)
		}
		return matches(x.l, o) || matches(x.r, o)
	case notExpr:
		return !matches(x.e, o)
	case cmpExpr:
		return compare(o.props[x.prop], x.op, x.val)
	case inExpr:
		for _, v := range x.vals {
			if compare(o.props[x.prop], "eq", v) {
				return true
			}
		}
		return false
	case anyExpr:
		elems, _ := o.props[x.prop].([]string)
		for _, e := range elems {
			if matches(x.body, &object{props: map[string]any{x.v: e}}) {
				return true
			}
		}
		return false
	case fnExpr:
		s, ok := o.props[x.prop].(string)
		if !ok {
			return false
		}
		s, v := strings.ToLower(s), strings.ToLower(x.val.s)
		if x.fn == "startswith" {
			return strings.HasPrefix(s, v)
		}
		return strings.HasSuffix(s, v)
	}
	return false
}

func compare(have any, op string, v lit) bool {
	if v.kind == litNull {
		isNull := have == nil
		if s, ok := have.(string); ok && s == "" {
			isNull = true
		}
		if op == "ne" {
			return !isNull
		}
		return op == "eq" && isNull
	}
	if v.kind == litBool {
		b, ok := have.(bool)
		eq := ok && b == v.b
		if op == "ne" {
			return !eq
		}
		return eq
	}
	s, ok := have.(string)
	if !ok {
		return op == "ne"
	}
	c := strings.Compare(strings.ToLower(s), strings.ToLower(v.s))
	switch op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	}
	return false
}
