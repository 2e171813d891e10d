import { generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// A Google service account key for tests: a fresh RSA key pair, and the JSON Google hands out
// (type, project_id, private_key_id, private_key, client_email, token_uri), with token_uri
// pointing at a stand-in's token endpoint.

export interface TestServiceAccount {
  clientEmail: string;
  projectId: string;
  publicKey: KeyObject;
  /** The key file's contents, token_uri set to `tokenUri` (a stand-in's `${url}/token`). */
  json(tokenUri: string): Record<string, string>;
  /** The JSON written to a file of its own (mode 0600), for FCM_CREDENTIALS_FILE. */
  file(tokenUri: string): string;
}

export function testServiceAccount(projectId = `herald-test-${randomBytes(3).toString("hex")}`): TestServiceAccount {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const clientEmail = `herald-push@${projectId}.iam.gserviceaccount.com`;
  const json = (tokenUri: string) => ({
    type: "service_account",
    project_id: projectId,
    private_key_id: randomBytes(20).toString("hex"),
    private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    client_email: clientEmail,
    client_id: String(BigInt(`0x${randomBytes(8).toString("hex")}`)),
    auth_uri: "https://accounts.google.com/o/oauth2/auth",
    token_uri: tokenUri,
  });
  return {
    clientEmail,
    projectId,
    publicKey,
    json,
    file(tokenUri) {
      const path = join(mkdtempSync(join(tmpdir(), "herald-sa-")), "key.json");
      writeFileSync(path, JSON.stringify(json(tokenUri), null, 2), { mode: 0o600 });
      return path;
    },
  };
}
