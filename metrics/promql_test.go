package metrics_test

import (
	"fmt"
	"strings"
)

// promqlNames returns the metric names an expression selects, in order of
// appearance: every identifier that is not a function or aggregation, a
// keyword, a label name (inside {…}, by/without/on/ignoring/group_left/
// group_right lists) or part of a string, number, duration, range, Grafana
// variable or comment. A selector by __name__ is refused: the checker could
// not see the name it selects.
func promqlNames(expr string) ([]string, error) {
	var names []string
	i, n := 0, len(expr)
	for i < n {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#': // comment to the end of the line
			for i < n && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{':
			end, err := skipMatchers(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '[': // range, subquery step, Grafana's $__rate_interval
			j := strings.IndexByte(expr[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unclosed [ at %d", i)
			}
			i += j + 1
		case c == '$': // Grafana variable: $name or ${name…}
			i++
			if i < n && expr[i] == '{' {
				j := strings.IndexByte(expr[i:], '}')
				if j < 0 {
					return nil, fmt.Errorf("unclosed ${ at %d", i)
				}
				i += j + 1
			} else {
				for i < n && isIdentChar(expr[i]) {
					i++
				}
			}
		case isDigit(c) || (c == '.' && i+1 < n && isDigit(expr[i+1])):
			i = skipNumber(expr, i)
		case isIdentStart(c):
			start := i
			for i < n && isIdentChar(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := skipSpace(expr, i)
			switch lower := strings.ToLower(word); {
			case labelListKeywords[lower]:
				if next < n && expr[next] == '(' {
					j := strings.IndexByte(expr[next:], ')')
					if j < 0 {
						return nil, fmt.Errorf("unclosed label list after %s", word)
					}
					i = next + j + 1
				}
			case keywords[lower] || aggregations[lower]:
			case next < n && expr[next] == '(': // a function call
			default:
				names = append(names, word)
			}
		default: // operators, parentheses, commas, @
			i++
		}
	}
	return names, nil
}

var (
	labelListKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	keywords          = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true}
	aggregations      = map[string]bool{
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
		"limitk": true, "limit_ratio": true,
	}
)

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) }

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// skipNumber skips a number or a duration: 0.99, 1e-9, 0x1f, 5m, 1h30m.
func skipNumber(s string, i int) int {
	hex := strings.HasPrefix(strings.ToLower(s[i:]), "0x")
	for i < len(s) {
		c := s[i]
		switch {
		case isIdentChar(c) || c == '.':
			i++
		case (c == '-' || c == '+') && !hex && (s[i-1] == 'e' || s[i-1] == 'E'):
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string literal that starts at i.
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %d", i)
}

// skipMatchers returns the index after the {…} that starts at i. Label
// names are not metric names; strings inside may hold any character.
func skipMatchers(s string, i int) (int, error) {
	for j := i + 1; j < len(s); {
		switch c := s[j]; {
		case c == '}':
			return j + 1, nil
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end
		case isIdentStart(c):
			k := j
			for k < len(s) && isIdentChar(s[k]) {
				k++
			}
			if s[j:k] == "__name__" {
				return 0, fmt.Errorf("selector by __name__ at %d: name the metric instead", j)
			}
			j = k
		default:
			j++
		}
	}
	return 0, fmt.Errorf("unclosed { at %d", i)
}
