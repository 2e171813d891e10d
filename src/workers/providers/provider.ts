import type { Channel, Recipient } from "../../../gen/herald/v1/notification_pb.js";

// One small interface for every channel adapter: send a rendered message,
// return the provider's id for it, or throw an error that says whether trying
// again can help. The classification happens here, where the provider answered
// (STYLE: errors decide retries), never in the worker.

/** A message ready to hand to a provider. */
export interface RenderedMessage {
  notificationId: string;
  tenant: string;
  channel: Channel;
  recipient: Recipient;
  subject: string;
  text: string;
  html: string;
  /** Structured payload (push data, webhook fields). */
  data: Record<string, string>;
  labels: Record<string, string>;
  /**
   * Stable for the notification across every attempt and every worker: the
   * provider (or receiver) drops a repeat carrying the same key. It becomes the
   * SMTP Message-ID, the webhook-id, and the providers' idempotency headers.
   */
  idempotencyKey: string;
  /** 1 for the first attempt. */
  attempt: number;
  /** The notification's category (NotificationSpec.category); "" or absent: none. */
  category?: string;
  /**
   * An email's one-click unsubscribe (RFC 8058), set by the unsubscribe guard
   * (unsubscribe-guard.ts) for a category the recipient may leave: it becomes the
   * List-Unsubscribe and List-Unsubscribe-Post headers. Absent: no such headers.
   */
  listUnsubscribe?: ListUnsubscribe;
}

/** Where a recipient unsubscribes: an HTTPS link that takes a one-click POST, and optionally a mailto. */
export interface ListUnsubscribe {
  url: string;
  /** A complete mailto: URI. */
  mailto?: string;
}

/** What the provider said when it accepted the message. */
export interface SendResult {
  /** The provider's id for the message (SMTP Message-ID, Twilio SID, FCM name, ...). */
  providerMessageId: string;
  /**
   * The configured provider that accepted it, when this Provider is several (failover); absent:
   * the Provider's own name.
   */
  provider?: string;
  /**
   * The provider is the destination and took the message: DELIVERED, not only SENT (a webhook
   * receiver's 2xx). Providers that relay to a person (SMTP, SMS, push) leave it unset.
   */
  delivered?: boolean;
}

export interface Provider {
  /** Name for logs, metrics and the rate limiter key, e.g. "smtp", "twilio". */
  readonly name: string;
  /**
   * The configured providers this one sends through, in order, when it is several (failover);
   * absent: only itself. Metrics are labelled by member, so a channel's series name the provider
   * that was called, never the list.
   */
  readonly members?: readonly string[];
  /**
   * Sends one message. Resolves when the provider accepted it; rejects with
   * TransientError or PermanentError (anything else counts as transient).
   * Must give up by itself within its configured timeout, and when `signal` aborts.
   */
  send(message: RenderedMessage, signal: AbortSignal): Promise<SendResult>;
  /** Releases connections (SMTP pool, HTTP agents). Idempotent. */
  close(): Promise<void>;
}
