// Cloudflare's v4 Workers KV REST API, served by a Worker on top of a real KV binding, so the
// REST driver can be tested against workerd's KV implementation (Miniflare does not serve the
// REST API itself). Routes, envelopes and error codes follow Cloudflare's API:
//   GET/PUT/DELETE /client/v4/accounts/:account/storage/kv/namespaces/:ns/values/:key
//   GET            /client/v4/accounts/:account/storage/kv/namespaces/:ns/keys?prefix&cursor&limit
//   GET            /client/v4/accounts/:account/storage/kv/namespaces/:ns/metadata/:key
const ROUTE = /^\/client\/v4\/accounts\/([^/]+)\/storage\/kv\/namespaces\/([^/]+)\/(values|keys|metadata)(?:\/(.+))?$/;

function envelope(status, result, errors = [], resultInfo) {
  const body = { success: errors.length === 0, errors, messages: [], result };
  if (resultInfo) body.result_info = resultInfo;
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

const fail = (status, code, message) => envelope(status, null, [{ code, message }]);

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const route = url.pathname.match(ROUTE);
    if (!route) return fail(404, 7003, "Could not route to " + url.pathname);
    if (request.headers.get("authorization") !== `Bearer ${env.API_TOKEN}`) {
      return fail(403, 10000, "Authentication error");
    }
    const [, account, namespace, kind, rawKey] = route;
    if (account !== env.ACCOUNT_ID) return fail(403, 10000, "Authentication error");
    if (namespace !== env.NAMESPACE_ID) return fail(404, 10013, "namespace not found");
    const key = rawKey === undefined ? undefined : decodeURIComponent(rawKey);
    try {
      if (kind === "keys" && request.method === "GET") {
        const limit = Number(url.searchParams.get("limit") ?? 1000);
        if (!(limit >= 10 && limit <= 1000)) return fail(400, 10020, "limit must be between 10 and 1000");
        const page = await env.SESSIONS.list({
          prefix: url.searchParams.get("prefix") ?? undefined,
          cursor: url.searchParams.get("cursor") || undefined,
          limit,
        });
        const cursor = page.list_complete ? "" : page.cursor;
        return envelope(200, page.keys, [], { count: page.keys.length, cursor });
      }
      if (key === undefined) return fail(404, 7003, "Could not route");
      if (kind === "values" && request.method === "GET") {
        const value = await env.SESSIONS.get(key, "arrayBuffer");
        if (value === null) return fail(404, 10009, "get: 'key not found'");
        return new Response(value, { headers: { "content-type": "application/octet-stream" } });
      }
      if (kind === "values" && request.method === "PUT") {
        const options = {};
        const ttl = url.searchParams.get("expiration_ttl");
        if (ttl !== null) {
          if (!(Number(ttl) >= 60)) {
            return fail(400, 10016, `Invalid expiration_ttl of ${ttl}. Expiration TTL must be at least 60.`);
          }
          options.expirationTtl = Number(ttl);
        }
        const expiration = url.searchParams.get("expiration");
        if (expiration !== null) options.expiration = Number(expiration);
        await env.SESSIONS.put(key, await request.arrayBuffer(), options);
        return envelope(200, null);
      }
      if (kind === "values" && request.method === "DELETE") {
        await env.SESSIONS.delete(key);
        return envelope(200, null);
      }
      if (kind === "metadata" && request.method === "GET") {
        const { value, metadata } = await env.SESSIONS.getWithMetadata(key, "arrayBuffer");
        if (value === null) return fail(404, 10009, "metadata: 'key not found'");
        return envelope(200, metadata);
      }
      return fail(405, 10000, "method not allowed");
    } catch (e) {
      // The binding refuses invalid keys, values and options with a TypeError or similar.
      return fail(400, 10001, String(e && e.message ? e.message : e));
    }
  },
};
