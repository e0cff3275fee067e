// DOM helpers: every value from the API goes in as text, never as markup.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function replace(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((child) => child !== null && child !== undefined));
}

// A refusal as the API answered it: its stable code and message.
export function errorMessage(error) {
  const code = error.code ? `${error.code}: ` : "";
  return el("p", { class: "error", role: "alert" }, `${code}${error.message}`);
}

// Numbers one view's requests. Answers can come back out of order (a slow first page, then another
// storefront's), so each request asks, once answered, whether it is still the latest; a stale
// answer must not overwrite what a later request shows.
export function latestOnly() {
  let latest = 0;
  return () => {
    const mine = ++latest;
    return () => mine === latest;
  };
}

export function say(node, text, kind = "info") {
  node.className = `status ${kind}`;
  node.textContent = text;
}
