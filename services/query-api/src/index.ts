// @keybox/query-api: GET /dashboard and its rendering, auth, and the HTTP server.
export { createApp, type AppDeps } from "./app.ts";
export { createOwnerVerifier, type AuthSettings, type OwnerVerifier } from "./auth.ts";
export { queryApiSettings, type QueryApiSettings } from "./config.ts";
export {
  renderDashboard,
  renderSnapshot,
  LayoutCache,
  type RenderedDashboard,
  type DashboardBody,
  type ClientView,
  type ProjectView,
  type LicenseView,
} from "./domain/renderDashboard.ts";
export { startQueryApi, type QueryApi } from "./server.ts";
