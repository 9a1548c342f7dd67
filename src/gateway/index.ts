/**
 * The public gateway module: what an app may import (types, `defineApp`, `nodeListener`), and
 * the adapters a worker uses to serve any app with node:http.
 */
export type { BridgedListener, BridgeOptions } from "./bridge.ts";
export { fetchToNodeListener, toNodeListener, wrapNodeListener } from "./bridge.ts";
export { PendingWork } from "./context.ts";
export type {
  AppContext,
  DefinedFetchApp,
  DefinedNodeListener,
  FetchHandler,
  LoadedApp,
  NodeListener,
  TlsInfo,
  UpgradeTarget,
} from "./contract.ts";
export { appShape, defineApp, nodeListener } from "./contract.ts";
export { AppShapeError, acceptedShapes, describeValue, resolveApp } from "./detect.ts";
export type { TrustPredicate } from "./forwarded.ts";
export { createTrust, defaultForwardedAllowIps, readForwarded } from "./forwarded.ts";
export { toRequest } from "./request.ts";
export type { LightParts } from "./response.ts";
export {
  installLightResponse,
  LightResponse,
  NativeResponse,
  toNativeResponse,
} from "./response.ts";
