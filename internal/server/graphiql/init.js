// dirsync's GraphiQL start-up. A file, not an inline script, so the page's
// Content-Security-Policy allows scripts from this server only.
(function () {
  var url = location.origin + '/graphql';
  var ws = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/graphql';
  var placeholder = { Authorization: 'Bearer dsk_your_API_key' };

  // The headers of the active tab's Headers editor, as GraphiQL keeps them
  // in localStorage (shouldPersistHeaders); the placeholder before that.
  function editorHeaders() {
    try {
      var state = JSON.parse(localStorage.getItem('graphiql:tabState') || 'null');
      var tab = state && state.tabs && state.tabs[state.activeTabIndex || 0];
      if (tab && tab.headers) {
        return JSON.parse(tab.headers);
      }
    } catch (e) { /* storage disabled or headers being typed */ }
    return placeholder;
  }

  // The headers go with every HTTP request and, as graphql-ws connection
  // parameters, in connection_init: the API takes the key from either.
  // GraphiQL sends the schema request without the editor's headers, so they
  // are filled in here when missing.
  var base = GraphiQL.createFetcher({ url: url, subscriptionUrl: ws });
  function fetcher(params, opts) {
    opts = opts || {};
    if (!opts.headers || Object.keys(opts.headers).length === 0) {
      opts = Object.assign({}, opts, { headers: editorHeaders() });
    }
    return base(params, opts);
  }

  ReactDOM.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      defaultHeaders: JSON.stringify(placeholder, null, 2),
      defaultEditorToolsVisibility: 'headers',
      inputValueDeprecation: true,
    }),
    document.getElementById('graphiql'),
  );
})();
