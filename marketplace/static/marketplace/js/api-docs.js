// Starts Swagger UI on the API docs page (/api/docs/, templates/marketplace/api_docs.html).
// drf-spectacular's own template does this in an inline <script>, which the site's CSP refuses;
// this is the same start-up (drf_spectacular/swagger_ui.js) reading its settings from data attributes.
"use strict";

(() => {
  const root = document.getElementById("swagger-ui");
  const data = root.dataset;
  const swaggerSettings = JSON.parse(data.settings || "{}");
  const oauth2Config = JSON.parse(data.oauth2Config || "{}");
  const schemaAuthNames = JSON.parse(data.schemaAuthNames || "[]");
  let schemaAuthFailed = false;
  let ui = null;
  const plugins = [];

  const reloadSchema = (ori) => (...args) => {
    schemaAuthFailed = false;
    setTimeout(() => ui.specActions.download());
    return ori(...args);
  };
  if (schemaAuthNames.length > 0) {
    plugins.push(() => ({
      statePlugins: { auth: { wrapActions: { authorizeOauth2: reloadSchema, authorize: reloadSchema, logout: reloadSchema } } },
    }));
  }

  const isSchemaUrl = (url) => ui !== null && url === new URL(ui.getConfigs().url, document.baseURI).href;

  const responseInterceptor = (response) => {
    if (!response.ok && isSchemaUrl(response.url) && !schemaAuthFailed) {
      // the schema refused the credentials: fetch it once more without them
      schemaAuthFailed = true;
      setTimeout(() => ui.specActions.download());
    }
    return response;
  };

  const injectAuthCredentials = (request) => {
    let authorized;
    if (ui !== null) {
      const state = ui.getState().get("auth").get("authorized");
      if (state !== undefined && Object.keys(state.toJS()).length !== 0) authorized = state.toJS();
    } else if (![undefined, "{}"].includes(localStorage.authorized)) {
      authorized = JSON.parse(localStorage.authorized);
    }
    if (authorized === undefined) return;
    for (const authName of schemaAuthNames) {
      const authDef = authorized[authName];
      if (authDef === undefined || authDef.schema === undefined) continue;
      if (authDef.schema.type === "http" && authDef.schema.scheme === "bearer") {
        request.headers.Authorization = `Bearer ${authDef.value}`;
        return;
      }
      if (authDef.schema.type === "apiKey" && authDef.schema.in === "header") {
        request.headers[authDef.schema.name] = authDef.value;
        return;
      }
    }
  };

  const requestInterceptor = (request) => {
    if (request.loadSpec && schemaAuthNames.length > 0 && !schemaAuthFailed) injectAuthCredentials(request);
    // "Try it out" with the portal's session: Django wants the CSRF token on unsafe methods
    if (!["GET", undefined].includes(request.method) && request.credentials === "same-origin") {
      request.headers[data.csrfHeaderName] = data.csrfToken;
    }
    return request;
  };

  ui = window.SwaggerUIBundle({
    url: data.schemaUrl,
    dom_id: "#swagger-ui",
    presets: [window.SwaggerUIBundle.presets.apis],
    plugins,
    layout: "BaseLayout",
    validatorUrl: null, // the default would load a badge from validator.swagger.io
    requestInterceptor,
    responseInterceptor,
    ...swaggerSettings,
  });
  if (Object.keys(oauth2Config).length > 0) ui.initOAuth(oauth2Config);
})();
