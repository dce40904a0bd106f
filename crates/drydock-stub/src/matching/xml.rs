//! `equalToXml`: XML documents compared as trees, as WireMock (XMLUnit) compares them.
//!
//! Element and attribute names are compared by namespace URI and local name (prefixes do not
//! matter), attributes in any order, child elements in order; whitespace around text is ignored,
//! as are comments and processing instructions.

use std::{collections::BTreeMap, fmt};

/// An element, owned (roxmltree's tree borrows its text).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Element {
    name: Name,
    attributes: BTreeMap<Name, String>,
    children: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Name {
    namespace: Option<String>,
    local: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Element(Element),
    Text(String),
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{{{ns}}}{}", self.local),
            None => f.write_str(&self.local),
        }
    }
}

impl Element {
    /// Parses a document and keeps its root element.
    pub fn parse(text: &str) -> Result<Element, String> {
        let document = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
        Ok(Element::from_node(document.root_element()))
    }

    fn from_node(node: roxmltree::Node<'_, '_>) -> Element {
        let name = Name {
            namespace: node.tag_name().namespace().map(String::from),
            local: node.tag_name().name().to_string(),
        };
        let attributes = node
            .attributes()
            .map(|a| {
                (
                    Name {
                        namespace: a.namespace().map(String::from),
                        local: a.name().to_string(),
                    },
                    a.value().to_string(),
                )
            })
            .collect();
        let children = node
            .children()
            .filter_map(|child| {
                if child.is_element() {
                    Some(Node::Element(Element::from_node(child)))
                } else if child.is_text() {
                    let text = child.text().unwrap_or_default().trim();
                    (!text.is_empty()).then(|| Node::Text(text.to_string()))
                } else {
                    None
                }
            })
            .collect();
        Element {
            name,
            attributes,
            children,
        }
    }

    /// The differences between this (expected) element and `actual`, at most `limit`, each
    /// naming where: `/order/item[2]/@sku: expected "a", got "b"`.
    pub fn differences(&self, actual: &Element, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        self.diff(actual, &format!("/{}", self.name), &mut out, limit);
        out
    }

    fn diff(&self, actual: &Element, at: &str, out: &mut Vec<String>, limit: usize) {
        if out.len() >= limit {
            return;
        }
        if self.name != actual.name {
            out.push(format!(
                "{at}: expected element {}, got {}",
                self.name, actual.name
            ));
            return;
        }
        for (name, want) in &self.attributes {
            match actual.attributes.get(name) {
                Some(got) if got == want => {}
                Some(got) => out.push(format!("{at}/@{name}: expected {want:?}, got {got:?}")),
                None => out.push(format!("{at}/@{name}: missing (expected {want:?})")),
            }
        }
        for (name, got) in &actual.attributes {
            if !self.attributes.contains_key(name) {
                out.push(format!("{at}/@{name}: not expected (got {got:?})"));
            }
        }
        if self.children.len() != actual.children.len() {
            out.push(format!(
                "{at}: expected {} child nodes, got {}",
                self.children.len(),
                actual.children.len()
            ));
        }
        for (i, (want, got)) in self.children.iter().zip(&actual.children).enumerate() {
            if out.len() >= limit {
                return;
            }
            match (want, got) {
                (Node::Element(want), Node::Element(got)) => {
                    want.diff(got, &format!("{at}/{}[{}]", want.name, i + 1), out, limit)
                }
                (Node::Text(want), Node::Text(got)) if want == got => {}
                (Node::Text(want), Node::Text(got)) => {
                    out.push(format!("{at}/text(): expected {want:?}, got {got:?}"))
                }
                (want, got) => out.push(format!(
                    "{at}/node()[{}]: expected {}, got {}",
                    i + 1,
                    want,
                    got
                )),
            }
        }
        out.truncate(limit);
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Element(e) => write!(f, "{e}"),
            Node::Text(t) => write!(f, "{t:?}"),
        }
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}", self.name)?;
        for (name, value) in &self.attributes {
            write!(f, " {name}={value:?}")?;
        }
        if self.children.is_empty() {
            return f.write_str("/>");
        }
        f.write_str(">")?;
        for child in &self.children {
            match child {
                Node::Element(e) => write!(f, "{e}")?,
                Node::Text(t) => f.write_str(t)?,
            }
        }
        write!(f, "</{}>", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::Element;

    fn differences(expected: &str, actual: &str) -> Vec<String> {
        let expected = Element::parse(expected).expect("expected is XML");
        let actual = Element::parse(actual).expect("actual is XML");
        expected.differences(&actual, 10)
    }

    #[test]
    fn whitespace_prefixes_and_attribute_order_do_not_matter() {
        assert!(differences(
            r#"<a:order xmlns:a="urn:o" id="1" kind="x"><a:item>book</a:item></a:order>"#,
            "<order xmlns=\"urn:o\" kind=\"x\" id=\"1\">\n  <item> book </item>\n  <!-- note -->\n</order>",
        )
        .is_empty());
    }

    #[test]
    fn differences_name_their_place() {
        assert_eq!(
            differences(
                r#"<order id="1"><item>book</item></order>"#,
                r#"<order id="2"><item>pen</item></order>"#
            ),
            [
                r#"/order/@id: expected "1", got "2""#,
                r#"/order/item[1]/text(): expected "book", got "pen""#
            ]
        );
        assert!(!differences("<a><b/><c/></a>", "<a><c/><b/></a>").is_empty());
        assert!(!differences("<a><b/></a>", "<a><b/><b/></a>").is_empty());
        assert!(!differences(r#"<a xmlns="urn:x"/>"#, r#"<a xmlns="urn:y"/>"#).is_empty());
    }
}
