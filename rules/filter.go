package rules

// logicalExpr is a compiled filter expression.
type logicalExpr interface {
	// test evaluates the expression with the node at tape index current as '@'.
	test(ev *evaluator, current int32) bool
	// appendNames appends the names of the name selectors inside the expression.
	appendNames(names []string) []string
}

// filter parses the logical expression of a filter selector.
func (c *compiler) filter() (logicalExpr, *QueryError) {
	// TODO: filter selectors arrive in the next change.
	return nil, c.fail(c.pos, "filter selectors are not supported yet")
}
