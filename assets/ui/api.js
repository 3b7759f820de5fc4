// The explorer's only way to the API: same-origin `fetch` with the token in an
// `Authorization` header (never in a cookie or a URL), and API errors turned into
// `ApiError`s that say which form field they belong to.

/** An answer other than 2xx: its status, and its messages by form field. */
export class ApiError extends Error {
  constructor(status, fields, retryAfter) {
    super(Object.values(fields).flat().join(" "));
    this.status = status;
    /** `{field: [message, ...]}`, keyed by the form's field names (see FIELD_OF). */
    this.fields = fields;
    this.retryAfter = retryAfter;
  }
}

/** The form field each API parameter is entered in; others are shown with the form. */
const FIELD_OF = {
  user_id: "user_id",
  series: "series",
  interval: "interval",
  agg_func: "agg_func",
  tz: "tz",
  fill: "fill",
  smooth: "smooth",
  start_time: "start_time",
  end_time: "end_time",
  as_of: "end_time",
  session_id: "session_id",
  max_points: "interval",
};

/** Where each refusal is shown: a bad token at the token, a forbidden user at the user. */
function fieldsOf(status, body, retryAfter) {
  const fields = {};
  const add = (field, messages) => {
    fields[field] = (fields[field] || []).concat(messages);
  };
  if (status === 401) {
    add("token", [body.detail || "The token was refused."]);
  } else if (status === 403) {
    add("user_id", [body.detail || "This token may not read this user's data."]);
  } else if (status === 400 && body && typeof body === "object" && !("detail" in body)) {
    for (const [param, messages] of Object.entries(body)) {
      add(FIELD_OF[param] || "form", Array.isArray(messages) ? messages.map(String) : [JSON.stringify(messages)]);
    }
  } else {
    let detail = (body && body.detail) || `The server answered ${status}.`;
    if (status === 429 && retryAfter) detail += ` (Retry in ${retryAfter} s.)`;
    add("form", [detail]);
  }
  return fields;
}

/** Talks to this server's API with one token. */
export class Api {
  constructor(token) {
    this.token = token;
  }

  /** `path` with the parameters that are set (empty strings and nulls are left out). */
  static url(path, params = {}) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== "") query.set(k, String(v));
    }
    const text = query.toString();
    return text ? `${path}?${text}` : path;
  }

  /** The raw `Response` of GET `url`, or an `ApiError` for any answer but 2xx. */
  async fetch(url) {
    let response;
    try {
      response = await fetch(url, { headers: { Authorization: `Bearer ${this.token}` } });
    } catch (e) {
      throw new ApiError(0, { form: [`The server cannot be reached (${e.message}).`] });
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      const retryAfter = response.headers.get("Retry-After");
      throw new ApiError(response.status, fieldsOf(response.status, body, retryAfter), retryAfter);
    }
    return response;
  }

  /** GET `path` with `params`; the JSON answer. */
  async get(path, params) {
    return (await this.fetch(Api.url(path, params))).json();
  }
}
