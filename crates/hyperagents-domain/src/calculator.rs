//! A calculator tool: arithmetic on numbers with `+ - * / % ^`, parentheses
//! and unary minus, evaluated by a small recursive-descent parser (no code
//! is ever executed).

/// Evaluates `expression`, or says what is wrong with it.
pub fn evaluate(expression: &str) -> Result<f64, String> {
    let tokens = tokenize(expression)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let value = parser.expression()?;
    if parser.pos != parser.tokens.len() {
        return Err(format!("unexpected `{}`", parser.tokens[parser.pos].text()));
    }
    if !value.is_finite() {
        return Err("the result is not a finite number".into());
    }
    Ok(value)
}

/// Formats a result the way people write numbers: `4`, not `4.0`.
pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let text = format!("{value:.10}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Op(char),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Number(n) => n.to_string(),
            Token::Op(c) => c.to_string(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    if text.len() > 1000 {
        return Err("the expression is longer than 1000 characters".into());
    }
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            // Digits, a decimal point, and thousands commas (`1,234`).
            let mut literal = String::new();
            while i < chars.len() {
                let thousands = chars[i] == ','
                    && chars
                        .get(i + 1..i + 4)
                        .is_some_and(|d| d.iter().all(char::is_ascii_digit))
                    && !chars.get(i + 4).is_some_and(char::is_ascii_digit);
                if chars[i].is_ascii_digit() || chars[i] == '.' {
                    literal.push(chars[i]);
                } else if !thousands {
                    break;
                }
                i += 1;
            }
            let number = literal
                .parse::<f64>()
                .map_err(|_| format!("`{literal}` is not a number"))?;
            tokens.push(Token::Number(number));
        } else if "+-*/%^()".contains(c) {
            tokens.push(Token::Op(c));
            i += 1;
        } else if c == '×' {
            tokens.push(Token::Op('*'));
            i += 1;
        } else if c == '÷' {
            tokens.push(Token::Op('/'));
            i += 1;
        } else {
            return Err(format!("unexpected character `{c}`"));
        }
    }
    if tokens.is_empty() {
        return Err("the expression is empty".into());
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, op: char) -> bool {
        if self.peek() == Some(&Token::Op(op)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    // expression := term (('+' | '-') term)*
    fn expression(&mut self) -> Result<f64, String> {
        let mut value = self.term()?;
        loop {
            if self.eat('+') {
                value += self.term()?;
            } else if self.eat('-') {
                value -= self.term()?;
            } else {
                return Ok(value);
            }
        }
    }

    // term := power (('*' | '/' | '%') power)*
    fn term(&mut self) -> Result<f64, String> {
        let mut value = self.power()?;
        loop {
            if self.eat('*') {
                value *= self.power()?;
            } else if self.eat('/') {
                let divisor = self.power()?;
                if divisor == 0.0 {
                    return Err("division by zero".into());
                }
                value /= divisor;
            } else if self.eat('%') {
                let divisor = self.power()?;
                if divisor == 0.0 {
                    return Err("modulo by zero".into());
                }
                value %= divisor;
            } else {
                return Ok(value);
            }
        }
    }

    // power := unary ('^' power)?   (right-associative)
    fn power(&mut self) -> Result<f64, String> {
        let base = self.unary()?;
        if self.eat('^') {
            let exponent = self.power()?;
            return Ok(base.powf(exponent));
        }
        Ok(base)
    }

    // unary := '-' unary | '+' unary | atom
    fn unary(&mut self) -> Result<f64, String> {
        self.depth += 1;
        if self.depth > 200 {
            return Err("the expression is nested too deeply".into());
        }
        let value = if self.eat('-') {
            -self.unary()?
        } else if self.eat('+') {
            self.unary()?
        } else {
            self.atom()?
        };
        self.depth -= 1;
        Ok(value)
    }

    // atom := number | '(' expression ')'
    fn atom(&mut self) -> Result<f64, String> {
        match self.peek().cloned() {
            Some(Token::Number(n)) => {
                self.pos += 1;
                Ok(n)
            }
            Some(Token::Op('(')) => {
                self.pos += 1;
                let value = self.expression()?;
                if !self.eat(')') {
                    return Err("missing `)`".into());
                }
                Ok(value)
            }
            Some(other) => Err(format!("unexpected `{}`", other.text())),
            None => Err("the expression ends too early".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_with_precedence_and_parentheses() {
        assert_eq!(evaluate("2+2"), Ok(4.0));
        assert_eq!(evaluate("2 + 3 * 4"), Ok(14.0));
        assert_eq!(evaluate("(2 + 3) * 4"), Ok(20.0));
        assert_eq!(evaluate("2^3^2"), Ok(512.0));
        assert_eq!(evaluate("-3 + 10 % 4"), Ok(-1.0));
        assert_eq!(evaluate("1,234 * 2"), Ok(2468.0));
        assert_eq!(evaluate("7 ÷ 2"), Ok(3.5));
    }

    #[test]
    fn bad_expressions_are_explained() {
        assert!(evaluate("1/0").unwrap_err().contains("division by zero"));
        assert!(evaluate("2 +").unwrap_err().contains("ends too early"));
        assert!(evaluate("(2").unwrap_err().contains("missing `)`"));
        assert!(
            evaluate("import os")
                .unwrap_err()
                .contains("unexpected character")
        );
        assert!(evaluate(&"(".repeat(500)).is_err());
        assert!(evaluate("").is_err());
    }

    #[test]
    fn numbers_format_plainly() {
        assert_eq!(format_number(4.0), "4");
        assert_eq!(format_number(3.5), "3.5");
        assert_eq!(format_number(1.0 / 3.0), "0.3333333333");
    }
}
