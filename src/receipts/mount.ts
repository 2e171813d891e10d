import type pg from "pg";
import type { Registry } from "prom-client";
import type { Config } from "../config.js";
import type { HttpRoute } from "../health/route.js";
import type { Logger } from "../log.js";
import { createReceiptMetrics } from "../metrics/receipts.js";
import { createReceiptStore } from "../store/receipts.js";
import { receiptRoutes } from "./route.js";
import { sendgridPublicKey } from "./sendgrid.js";

/**
 * The receipt routes the configuration calls for: Twilio's when an SMS provider is Twilio and a
 * public URL is set (the URL Twilio signs), SendGrid's when its verification key is set.
 */
export function configuredReceiptRoutes(config: Config, deps: { pool: pg.Pool; registry: Registry; log: Logger }): HttpRoute {
  // With failover Twilio may be any entry of the SMS list, not only the first.
  const { providers } = config.delivery;
  const sms = [providers.sms, ...(providers.fallbacks?.sms ?? [])].find((p) => p?.kind === "twilio");
  const sendgrid = config.receipts.sendgrid;
  return receiptRoutes({
    store: createReceiptStore({ pool: deps.pool }),
    twilio:
      sms?.kind === "twilio" && sms.statusCallbackUrl
        ? { accountSid: sms.accountSid, authToken: sms.authToken, callbackUrl: sms.statusCallbackUrl }
        : undefined,
    sendgrid: sendgrid ? { publicKey: sendgridPublicKey(sendgrid.publicKey), maxAgeMs: sendgrid.maxAgeMs } : undefined,
    metrics: createReceiptMetrics(deps.registry),
    log: deps.log,
    maxBodyBytes: config.maxMessageBytes,
  });
}
