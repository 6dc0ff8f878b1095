// dirsync's GraphiQL start-up. A file, not an inline script, so the page's
// Content-Security-Policy allows scripts from this server only.
(function () {
  var url = location.origin + '/graphql';
  var ws = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/graphql';
  // The headers typed in the Headers editor go with every HTTP request and,
  // as graphql-ws connection parameters, in connection_init: the API takes
  // the key from either.
  var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: ws });
  ReactDOM.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      defaultHeaders: JSON.stringify({ Authorization: 'Bearer dsk_your_API_key' }, null, 2),
      defaultEditorToolsVisibility: 'headers',
      inputValueDeprecation: true,
    }),
    document.getElementById('graphiql'),
  );
})();
