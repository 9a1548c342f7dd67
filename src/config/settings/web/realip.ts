/**
 * Fields of the realip module (src/webserver/realip/): the client address taken from a trusted
 * proxy's header (nginx's realip module). Inherited.
 */
import { boolean, field, optional, refine, string } from "../../types.ts";
import { addressList } from "./access.ts";

const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export const realipFields = {
  realIpFrom: field({
    type: optional(addressList),
    doc: 'The proxies trusted to say who the client is: addresses, networks (`"10.0.0.0/8"`), `"unix:"` for peers on a unix socket. Only a request whose peer is one of these has its client address taken from `realIpHeader`. Unset: the peer is the client.',
    nginx: "set_real_ip_from",
  }),
  realIpHeader: field({
    type: optional(
      refine(string(), (name, problem) =>
        headerName.test(name)
          ? name.toLowerCase()
          : problem(`not a header name: ${JSON.stringify(name)}`),
      ),
    ),
    doc: 'The header naming the client: `"X-Forwarded-For"` (the default; a list, the nearest proxy last), `"X-Real-IP"` (one address), or `"Forwarded"` (RFC 7239, its `for=` parameters). A value that is not an address changes nothing.',
    nginx: "real_ip_header",
  }),
  realIpRecursive: field({
    type: optional(boolean()),
    doc: "Off (the default): the client is the last address of the list (what the trusted peer saw). On: addresses of trusted proxies are skipped from the end, and the client is the last untrusted one (for chains of proxies, each in `realIpFrom`).",
    nginx: "real_ip_recursive",
  }),
};
