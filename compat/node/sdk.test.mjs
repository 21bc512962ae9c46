// The official Tencent Cloud Node.js SDK (tencentcloud-sdk-nodejs 4.1.313) against a
// real cardcheck server. Only the endpoint differs from a call to Tencent Cloud:
// plain http on 127.0.0.1:PORT (httpProfile.protocol "http://", endpoint "127.0.0.1:PORT").
//
// The server binary comes from $CARDCHECK_BIN (default target/debug/cardcheck at the
// repository root); it is never built here.

import { describe, it as nodeIt, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const tencentcloud = require("tencentcloud-sdk-nodejs");
const { CommonClient } = require("tencentcloud-sdk-nodejs/tencentcloud/common/common_client");
const FaceidClient = tencentcloud.faceid.v20180301.Client;

// The SDK's fetch wrapper honours $http_proxy; the local server must be reached directly.
for (const v of ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]) {
  delete process.env[v];
}

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
// Seconds to wait for the `listening on` line / for the exit after SIGTERM / for an
// admin command (COMPAT_START_TIMEOUT etc. override them on slow machines).
const seconds = (name, dflt) => 1000 * (Number(process.env[name]) || dflt);
const STARTUP_TIMEOUT_MS = seconds("COMPAT_START_TIMEOUT", 10);
const SHUTDOWN_TIMEOUT_MS = seconds("COMPAT_STOP_TIMEOUT", 10);
const ADMIN_TIMEOUT_MS = seconds("COMPAT_ADMIN_TIMEOUT", 30);
const LISTEN_RE = /^listening on http:\/\/(127\.0\.0\.1:(\d+))\s*$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CJK_RE = /[\u3400-\u9fff]/;
const ASCII_RE = /^[\x00-\x7f]*$/;

const NAME = "Wei Xiaobao";
const PASS_CARD = "6225768888888888";
const MISMATCH_CARD = "6226090210146748";
const CARDS = [
  { id: "pass", card: PASS_CARD, result: "0", zh: "认证通过" },
  { id: "mismatch", card: MISMATCH_CARD, result: "-4", zh: "持卡人信息有误" },
];
const COMBOS = [
  { id: "tc3-post", signMethod: "TC3-HMAC-SHA256", reqMethod: "POST" },
  { id: "tc3-get", signMethod: "TC3-HMAC-SHA256", reqMethod: "GET" },
  { id: "hmacsha1-get", signMethod: "HmacSHA1", reqMethod: "GET" },
  { id: "hmacsha256-post", signMethod: "HmacSHA256", reqMethod: "POST" },
];
const AUTH_COMBOS = [COMBOS[0], COMBOS[2]];

function serverBinary() {
  const raw = process.env.CARDCHECK_BIN || "target/debug/cardcheck";
  return path.isAbsolute(raw) ? raw : path.join(REPO_ROOT, raw);
}

// ------------------------------------------------------------------ server fixture

const server = { proc: null, host: null, creds: null, dataDir: null, stdout: [], stderr: [], exit: null, started: false, startError: null };

function tail(lines) {
  return lines.join("").split("\n").slice(-60).join("\n");
}

function serverLogs() {
  return `--- server stdout (tail) ---\n${tail(server.stdout)}\n--- server stderr (tail) ---\n${tail(server.stderr)}`;
}

async function startServer() {
  const bin = serverBinary();
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`server binary not found: ${bin} (run \`cargo build -p cardcheck\` or set CARDCHECK_BIN)`);
  }
  server.dataDir = mkdtempSync(path.join(tmpdir(), "cardcheck-compat-node-"));

  let out;
  try {
    out = execFileSync(bin, ["account", "create", "compat", "--json", "--data-dir", server.dataDir], {
      encoding: "utf8",
      timeout: ADMIN_TIMEOUT_MS,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (e) {
    const why = e.code === "ETIMEDOUT" ? `did not finish within ${ADMIN_TIMEOUT_MS / 1000}s` : `failed (status ${e.status})`;
    throw new Error(`\`cardcheck account create compat --json\` ${why}: ${e.stderr || e.message}`);
  }
  let account;
  try {
    account = JSON.parse(out);
  } catch (e) {
    throw new Error(`\`cardcheck account create --json\` stdout is not one JSON document: ${JSON.stringify(out)}`);
  }
  for (const k of ["account", "secret_id", "secret_key"]) {
    if (typeof account[k] !== "string" || !account[k]) {
      throw new Error(`\`account create --json\` output lacks string field ${k}: ${out}`);
    }
  }
  server.creds = { secretId: account.secret_id, secretKey: account.secret_key };

  // The suite sends each doc card dozens of times from one account, quickly: lift the
  // daily attempt limit (default 10 per card, then Result -17) and the rate limit
  // (default 20/s, then RequestLimitExceeded). A binary without `account set` (usage
  // error mentioning "unrecognized") is let through.
  const lift = ["account", "set", "compat", "--daily-attempts", "0", "--qps", "100000", "--data-dir", server.dataDir];
  try {
    execFileSync(bin, lift, { encoding: "utf8", timeout: ADMIN_TIMEOUT_MS, stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    if (!(e.status === 2 && /unrecognized/.test(e.stderr || ""))) {
      throw new Error(`\`cardcheck ${lift.slice(0, -2).join(" ")}\` failed (status ${e.status}): ${e.stderr || e.message}`);
    }
  }

  const proc = spawn(
    bin,
    ["serve", "--data-dir", server.dataDir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--demo"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  server.proc = proc;
  const exited = new Promise((resolve) => proc.on("exit", (code, sig) => resolve({ code, signal: sig })));
  server.exit = exited;
  // keep draining both pipes for the whole run so the server never blocks on them
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (d) => {
    server.stderr.push(d);
    if (server.stderr.length > 400) server.stderr.splice(0, 200);
  });
  const rl = createInterface({ input: proc.stdout, crlfDelay: Infinity });
  const firstLine = new Promise((resolve) => {
    let got = false;
    rl.on("line", (line) => {
      server.stdout.push(line + "\n");
      if (server.stdout.length > 400) server.stdout.splice(0, 200);
      if (!got) {
        got = true;
        resolve(line);
      }
    });
    rl.on("close", () => {
      if (!got) resolve(null);
    });
  });
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(undefined), STARTUP_TIMEOUT_MS);
  });
  const line = await Promise.race([firstLine, timeout, exited.then(() => firstLine)]);
  clearTimeout(timer);
  const m = LISTEN_RE.exec(line || "");
  if (!m) {
    proc.kill("SIGKILL");
    const what = line === undefined ? `no line within ${STARTUP_TIMEOUT_MS / 1000}s` : JSON.stringify(line);
    throw new Error(
      `\`cardcheck serve\` did not print \`listening on http://127.0.0.1:PORT\` as its first stdout line; got ${what}\n${serverLogs()}`,
    );
  }
  server.host = m[1];
  server.started = true;
}

async function stopServer() {
  const proc = server.proc;
  try {
    if (!proc) return;
    if (!server.started) {
      // startServer already failed (and killed the process): that failure is the report
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      return;
    }
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    let timer;
    const res = await Promise.race([
      server.exit,
      new Promise((resolve) => {
        timer = setTimeout(() => resolve(null), SHUTDOWN_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (res === null) {
      proc.kill("SIGKILL");
      throw new Error(`server did not exit within ${SHUTDOWN_TIMEOUT_MS / 1000}s of SIGTERM\n${serverLogs()}`);
    }
    assert.deepEqual(res, { code: 0, signal: null }, `server did not exit 0 on SIGTERM\n${serverLogs()}`);
  } finally {
    if (server.dataDir) rmSync(server.dataDir, { recursive: true, force: true });
  }
}

// Every test needs the server: when it did not start, each test fails with the one
// reason (instead of node cancelling them all behind a failed before() hook).
function it(name, fn) {
  return nodeIt(name, async (t) => {
    if (server.startError) throw server.startError;
    return fn(t);
  });
}

async function startServerOrRecord() {
  try {
    await startServer();
  } catch (e) {
    const err = new Error(e.message);
    err.stack = `Error: ${e.message}`; // the message says it all; no stack
    server.startError = err;
  }
}

// ------------------------------------------------------------------ helpers

function profile({ signMethod = "TC3-HMAC-SHA256", reqMethod = "POST", language = "en-US" } = {}) {
  const p = {
    signMethod,
    httpProfile: { protocol: "http://", endpoint: server.host, reqMethod, reqTimeout: 30 },
  };
  if (language) p.language = language;
  return p;
}

function client({ secretId, secretKey, ...opts } = {}) {
  return new FaceidClient({
    credential: { secretId: secretId ?? server.creds.secretId, secretKey: secretKey ?? server.creds.secretKey },
    region: "ap-guangzhou",
    profile: profile(opts),
  });
}

function commonClient(version, opts = {}) {
  return new CommonClient("faceid.tencentcloudapi.com", version, {
    credential: { ...server.creds },
    region: "ap-guangzhou",
    profile: profile(opts),
  });
}

function wrongKey() {
  const k = server.creds.secretKey;
  return k.slice(0, -1) + (k.endsWith("A") ? "B" : "A");
}

function randomSecretId() {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return "AKID" + Array.from(randomBytes(32), (b) => alphabet[b % alphabet.length]).join("");
}

// A predicate for assert.rejects: exact Error.Code, a RequestId, a Message.
function sdkError(code, extra) {
  return (err) => {
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    assert.match(String(err.requestId), UUID_RE, "error RequestId is not a lower-case UUID");
    assert.ok(typeof err.message === "string" && err.message.trim(), "empty error Message");
    if (extra) extra(err);
    return true;
  };
}

// Runs fn with the global clock (Date.now and new Date(), which the SDK uses for
// X-TC-Timestamp / Timestamp) shifted by offsetMs.
async function withClockOffset(offsetMs, fn) {
  const RealDate = globalThis.Date;
  let reads = 0;
  class ShiftedDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) {
        reads++;
        super(RealDate.now() + offsetMs);
      } else {
        super(...args);
      }
    }
    static now() {
      reads++;
      return RealDate.now() + offsetMs;
    }
  }
  globalThis.Date = ShiftedDate;
  try {
    return await fn();
  } finally {
    globalThis.Date = RealDate;
    assert.ok(reads > 0, "the SDK did not read the shifted clock");
  }
}

// ------------------------------------------------------------------ tests

describe("tencentcloud-sdk-nodejs 4.1.313 against cardcheck", () => {
  before(startServerOrRecord, { timeout: 90_000 });
  after(stopServer, { timeout: 60_000 });

  describe("BankCard2EVerification", () => {
    for (const combo of COMBOS) {
      for (const c of CARDS) {
        for (const language of ["en-US", "zh-CN"]) {
          it(`${combo.id} ${c.id} ${language} -> Result ${c.result}`, async () => {
            const resp = await client({ ...combo, language }).BankCard2EVerification({ Name: NAME, BankCard: c.card });
            assert.equal(resp.Result, c.result);
            assert.equal(typeof resp.Description, "string");
            assert.ok(resp.Description.trim(), "empty Description");
            if (language === "zh-CN") {
              assert.equal(resp.Description, c.zh);
            } else {
              assert.match(resp.Description, ASCII_RE, `en-US Description is not English: ${resp.Description}`);
            }
            assert.match(resp.RequestId, UUID_RE);
          });
        }
      }
    }

    it("generic request() and CommonClient 2018-03-01 work (control for the error cases)", async () => {
      const r1 = await client().request("BankCard2EVerification", { Name: NAME, BankCard: PASS_CARD });
      assert.equal(r1.Result, "0");
      assert.match(r1.RequestId, UUID_RE);
      const r2 = await commonClient("2018-03-01").request("BankCard2EVerification", {
        Name: NAME,
        BankCard: MISMATCH_CARD,
      });
      assert.equal(r2.Result, "-4");
      assert.match(r2.RequestId, UUID_RE);
    });
  });

  describe("errors", () => {
    for (const combo of AUTH_COMBOS) {
      it(`${combo.id}: wrong SecretKey -> AuthFailure.SignatureFailure`, async () => {
        await assert.rejects(
          client({ ...combo, secretKey: wrongKey() }).BankCard2EVerification({ Name: NAME, BankCard: PASS_CARD }),
          sdkError("AuthFailure.SignatureFailure"),
        );
      });

      it(`${combo.id}: unknown SecretId -> AuthFailure.SecretIdNotFound`, async () => {
        await assert.rejects(
          client({ ...combo, secretId: randomSecretId() }).BankCard2EVerification({ Name: NAME, BankCard: PASS_CARD }),
          sdkError("AuthFailure.SecretIdNotFound"),
        );
      });

      it(`${combo.id}: timestamp 10 minutes old -> AuthFailure.SignatureExpire`, async () => {
        const c = client(combo);
        await withClockOffset(-600_000, () =>
          assert.rejects(
            c.BankCard2EVerification({ Name: NAME, BankCard: PASS_CARD }),
            sdkError("AuthFailure.SignatureExpire"),
          ),
        );
      });
    }

    for (const combo of [COMBOS[0], COMBOS[2]]) {
      it(`${combo.id}: missing Name -> MissingParameter`, async () => {
        await assert.rejects(
          client(combo).BankCard2EVerification({ BankCard: PASS_CARD }),
          sdkError("MissingParameter", (err) => assert.match(err.message, /Name/)),
        );
      });
    }

    it("unknown Action -> InvalidAction", async () => {
      await assert.rejects(
        client().request("NoSuchAction", { Name: NAME, BankCard: PASS_CARD }),
        sdkError("InvalidAction"),
      );
    });

    it("version 2017-01-01 -> NoSuchVersion", async () => {
      await assert.rejects(
        commonClient("2017-01-01").request("BankCard2EVerification", { Name: NAME, BankCard: PASS_CARD }),
        sdkError("NoSuchVersion"),
      );
    });

    for (const language of ["zh-CN", "en-US", null]) {
      it(`error Message language ${language ?? "unset (English)"}`, async () => {
        await assert.rejects(
          client({ secretKey: wrongKey(), language }).BankCard2EVerification({ Name: NAME, BankCard: PASS_CARD }),
          sdkError("AuthFailure.SignatureFailure", (err) => {
            if (language === "zh-CN") assert.match(err.message, CJK_RE, `not Chinese: ${err.message}`);
            else assert.match(err.message, ASCII_RE, `not English: ${err.message}`);
          }),
        );
      });
    }
  });
});
