// Makes Sigstore bundles with the official sigstore-js code (@sigstore/sign), key-based, no
// witnesses (no Fulcio, no Rekor: nothing leaves the machine), for tests/harness/signing.py.
// stdin: [{"key": PEM private key, "kind": "dsse" | "message", "data": base64, "type": payloadType}]
// stdout: [bundle JSON, ...] in the same order. Optionally checks each with @sigstore/verify.
'use strict';
const crypto = require('crypto');
const { DSSEBundleBuilder, MessageSignatureBundleBuilder } = require('@sigstore/sign');
const { bundleToJSON } = require('@sigstore/bundle');

async function one(job) {
  const key = crypto.createPrivateKey(job.key);
  const publicKey = crypto.createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
  const signer = {
    sign: async (data) => ({
      signature: crypto.sign('sha256', data, key),
      key: { $case: 'publicKey', publicKey, hint: job.hint || '' },
    }),
  };
  const Builder = job.kind === 'dsse' ? DSSEBundleBuilder : MessageSignatureBundleBuilder;
  const builder = new Builder({ signer, witnesses: [] });
  const bundle = await builder.create({ data: Buffer.from(job.data, 'base64'), type: job.type });
  return bundleToJSON(bundle);
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const jobs = JSON.parse(Buffer.concat(chunks).toString());
  const out = [];
  for (const job of jobs) out.push(await one(job));
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(String((err && err.stack) || err));
  process.exit(1);
});
