import { basename, dirname } from "node:path";
import { createNotifyListener, type NotifyListener } from "../readiness/notify.js";
import type { LaunchContext } from "./launch-context.js";

// sd_notify between the app and systemd. With `--ready notify` warmstart listens for the app's
// READY=1; under a systemd unit of Type=notify (warmstart's own NOTIFY_SOCKET set) it also
// passes the app's messages on (STATUS=, WATCHDOG=1, STOPPING=1, RELOADING=1) and says
// READY=1 itself once the launch is ready, cold or warm. One helper does both.

/** The socket systemd gave warmstart (the launch's environment's), or undefined. */
export function upstreamOf(context: LaunchContext): { socket: string; mainPid: number } | undefined {
  const socket = context.opts.env.NOTIFY_SOCKET;
  return socket ? { socket, mainPid: process.pid } : undefined;
}

/** Whether the launch listens for the app's sd_notify messages at all. */
export function isNotifyWanted(context: LaunchContext): boolean {
  return context.opts.probes.some((probe) => probe.kind === "notify") || upstreamOf(context) !== undefined;
}

/** A listener at `socket`, relaying upstream when there is one, owned by the launch. */
export async function listenForNotify(context: LaunchContext, socket: string): Promise<NotifyListener> {
  const upstream = upstreamOf(context);
  const listener = await createNotifyListener(dirname(socket), {
    socketName: basename(socket),
    ...(upstream ? { upstream } : {}),
  });
  context.resources.own("notify helper", () => listener.close());
  return listener;
}

/** Once the launch is ready: systemd hears it from warmstart, the service's main process. */
export function sayReady(notify: NotifyListener | undefined): void {
  notify?.sendUpstream("READY=1");
}
