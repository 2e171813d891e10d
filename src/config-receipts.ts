import { createPublicKey } from "node:crypto";
import { ConfigError, int, url, type Env } from "./config-env.js";

// Receipts (README, "Receipts"): where providers reach Herald, and what authenticates SendGrid's
// events. Twilio's callbacks are authenticated with the SMS provider's auth token, configured
// with the provider (config-delivery.ts).

export interface ReceiptsConfig {
  /**
   * The URL at which providers reach the API's HTTP listener (HERALD_PUBLIC_URL), no trailing
   * slash; undefined: no callbacks are asked for (SMS stays SENT). Twilio signs the URL it
   * called, so this must be exactly what a provider calls, scheme, host, port and path prefix.
   */
  publicUrl?: string;
  /** SendGrid's Signed Event Webhook; undefined: /receipts/sendgrid is not served. */
  sendgrid?: {
    /** The verification key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo (ECDSA P-256). */
    publicKey: string;
    /** Events signed longer ago than this (or this far in the future) are refused: a replay bound. */
    maxAgeMs: number;
  };
}

/** The StatusCallback base Twilio is given for every SMS, when a public URL is configured. */
export function twilioCallbackUrl(publicUrl: string | undefined): string | undefined {
  return publicUrl ? `${publicUrl}/receipts/twilio` : undefined;
}

/** HERALD_PUBLIC_URL, checked: read by the receipts config and by the Twilio provider's. */
export function publicUrlOf(env: Env): string | undefined {
  return env.HERALD_PUBLIC_URL ? url(env, "HERALD_PUBLIC_URL", "") : undefined;
}

export function loadReceiptsConfig(env: Env): ReceiptsConfig {
  const publicUrl = publicUrlOf(env);
  const key = env.HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY?.trim();
  return {
    publicUrl,
    sendgrid: key ? { publicKey: sendgridKey(key), maxAgeMs: int(env, "HERALD_RECEIPT_MAX_AGE_S", 600, 1, 86_400) * 1000 } : undefined,
  };
}

// Checked now, so a key pasted wrong stops the server at start instead of refusing every event.
function sendgridKey(raw: string): string {
  try {
    const key = createPublicKey({ key: Buffer.from(raw, "base64"), format: "der", type: "spki" });
    if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") return raw;
  } catch {
    // reported below
  }
  throw new ConfigError("HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY: expected the base64 ECDSA P-256 public key SendGrid shows for the Signed Event Webhook");
}
