/** The hello app as a web-standard fetch handler, for `brigade app bench/servers/appFetch.ts`. */
export default {
  fetch(): Response {
    return new Response("hello", { headers: { "content-type": "text/plain" } });
  },
};
