// Keyless signatures made offline: @sigstore/mock's Fulcio CA and Rekor log (in-process, their
// HTTP intercepted by nock: nothing leaves the machine) and the trusted root that names them.
// Sigstore bundles are made by the official @sigstore/sign code (FulcioSigner + RekorWitness);
// cosign's legacy keyless .sig layers are assembled here from cosign's specification (a
// hashedrekord entry logged in the mock Rekor, its SET in the bundle annotation).
// stdin: {"jobs": [{"kind": "dsse" | "message" | "cosign", "data": base64, "type": payloadType,
//                   "subject": SAN, "issuer": OIDC issuer, "issuedSecondsAgo": 0}]}
// stdout: {"trustedRoot": {...}, "results": [...]} in the order of the jobs.
'use strict';
const crypto = require('crypto');
const nock = require('nock');
const { initializeCA, initializeTLog, fulcioHandler, rekorHandler } = require('@sigstore/mock');
const { DSSEBundleBuilder, MessageSignatureBundleBuilder, FulcioSigner, RekorWitness } = require('@sigstore/sign');
const { bundleToJSON } = require('@sigstore/bundle');

const FULCIO = 'https://fulcio.mock.invalid';
const REKOR = 'https://rekor.mock.invalid';
const ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';
const ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';

const b64 = (buf) => Buffer.from(buf).toString('base64');
const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
const pem = (der) => `-----BEGIN CERTIFICATE-----\n${b64(der).match(/.{1,64}/g).join('\n')}\n-----END CERTIFICATE-----\n`;

function trustedRoot(ca, tlog) {
  const start = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [{
      baseUrl: REKOR, hashAlgorithm: 'SHA2_256',
      publicKey: { rawBytes: b64(tlog.publicKey), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start } },
      logId: { keyId: b64(crypto.createHash('sha256').update(tlog.publicKey).digest()) },
    }],
    certificateAuthorities: [{
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' }, uri: FULCIO,
      certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] }, validFor: { start },
    }],
    ctlogs: [], timestampAuthorities: [],
  };
}

function intercept(base, handler) {
  nock(base).persist().post(handler.path).reply(async (_, body) => {
    const req = typeof body === 'string' ? body : JSON.stringify(body);
    const { statusCode, response, contentType } = await handler.fn(req);
    return [statusCode, response, { 'Content-Type': contentType || 'text/plain' }];
  });
}

async function bundleJob(job, caKey, tlog) {
  const past = new Date(Date.now() - (job.issuedSecondsAgo || 0) * 1000);
  const ca = await initializeCA(caKey, undefined, past);
  nock.cleanAll();
  intercept(FULCIO, fulcioHandler(ca));
  intercept(REKOR, rekorHandler(tlog));
  const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ iss: job.issuer, sub: job.subject, aud: 'sigstore' })}.`;
  const signer = new FulcioSigner({ identityProvider: { getToken: async () => token }, fulcioBaseURL: FULCIO });
  const witnesses = [new RekorWitness({ rekorBaseURL: REKOR, entryType: 'dsse' })];
  const Builder = job.kind === 'dsse' ? DSSEBundleBuilder : MessageSignatureBundleBuilder;
  const bundle = await new Builder({ signer, witnesses }).create({ data: Buffer.from(job.data, 'base64'), type: job.type });
  return bundleToJSON(bundle);
}

async function cosignJob(job, caKey, tlog) {
  const past = new Date(Date.now() - (job.issuedSecondsAgo || 0) * 1000);
  const ca = await initializeCA(caKey, undefined, past);
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const cert = await ca.issueCertificate({
    publicKey: publicKey.export({ format: 'der', type: 'spki' }),
    subjectAltName: job.subject,
    extensions: [{ oid: ISSUER_V1, value: job.issuer, legacy: true }, { oid: ISSUER_V2, value: job.issuer }],
  });
  const payload = Buffer.from(job.data, 'base64');
  const signature = crypto.sign('sha256', payload, privateKey);
  const logged = await tlog.log({
    apiVersion: '0.0.1', kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: crypto.createHash('sha256').update(payload).digest('hex') } },
      signature: { content: b64(signature), publicKey: { content: b64(pem(cert)) } },
    },
  });
  const entry = Object.values(logged)[0];
  return {
    signature: b64(signature),
    certificate: pem(cert),
    chain: pem(ca.rootCertificate),
    bundle: JSON.stringify({
      SignedEntryTimestamp: entry.verification.signedEntryTimestamp,
      Payload: { body: entry.body, integratedTime: entry.integratedTime, logIndex: entry.logIndex, logID: entry.logID },
    }),
  };
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const { jobs } = JSON.parse(Buffer.concat(chunks).toString());
  const caKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const tlog = await initializeTLog(REKOR, crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }));
  const anchor = await initializeCA(caKey, undefined, new Date(Date.now() - 2 * 3600 * 1000));
  nock.disableNetConnect();
  const results = [];
  for (const job of jobs) results.push(job.kind === 'cosign' ? await cosignJob(job, caKey, tlog) : await bundleJob(job, caKey, tlog));
  process.stdout.write(JSON.stringify({ trustedRoot: trustedRoot(anchor, tlog), results }));
}

main().catch((err) => {
  process.stderr.write(String((err && err.stack) || err));
  process.exit(1);
});
