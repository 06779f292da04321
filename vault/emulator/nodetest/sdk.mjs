// Runs the official WorkOS Node SDK against the piivault emulator: create, read (by ID and
// by name), describe, update with a version check (a stale one must be rejected), versions,
// list with pagination, delete, and the data key round trip. The Go test TestNodeSDK starts
// the emulator on 127.0.0.1 and runs this script with WORKOS_EMULATOR_PORT and
// WORKOS_API_KEY set. It exits non-zero with a message on the first failed check.
import assert from 'node:assert/strict';
import { WorkOS, ConflictException, NotFoundException, UnauthorizedException } from '@workos-inc/node';

const port = Number(process.env.WORKOS_EMULATOR_PORT);
const apiKey = process.env.WORKOS_API_KEY;
assert.ok(port > 0, 'WORKOS_EMULATOR_PORT is not set');
assert.ok(apiKey, 'WORKOS_API_KEY is not set');

// only ever the emulator on loopback; no retries, so that a failure shows at once
const options = { apiHostname: '127.0.0.1', port, https: false, config: {}, maxRetries: 0 };
const workos = new WorkOS(apiKey, options);
const vault = workos.vault;
const context = { organization_id: 'org_node' };

async function rejects(promise, type, what) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof type, `${what}: got ${err?.name}: ${err?.message}, want ${type.name}`);
    return err;
  }
  assert.fail(`${what}: no error, want ${type.name}`);
}

const created = await vault.createObject({ name: 'node/email', value: 'alice@example.com', context });
assert.ok(created.id, 'create returned no ID');
assert.deepEqual(created.context, context, 'create returned another context');
assert.ok(created.versionId, 'create returned no version ID');
assert.ok(created.updatedAt instanceof Date, 'create returned no update time');
assert.ok(!isNaN(created.updatedAt), 'create returned an invalid update time');

const read = await vault.readObject({ id: created.id });
assert.equal(read.value, 'alice@example.com', 'read returned another value');
assert.equal(read.name, 'node/email', 'read returned another name');
assert.equal(read.metadata.versionId, created.versionId, 'read returned another version');

const byName = await vault.readObjectByName('node/email');
assert.equal(byName.id, created.id, 'read by name returned another object');
assert.equal(byName.value, 'alice@example.com', 'read by name returned another value');

const described = await vault.describeObject({ id: created.id });
assert.equal(described.value, undefined, 'describe returned a value');
assert.deepEqual(described.metadata.context, context, 'describe returned another context');

const updated = await vault.updateObject({ id: created.id, value: 'bob@example.com', versionCheck: created.versionId });
assert.notEqual(updated.metadata.versionId, created.versionId, 'update kept the version');
assert.deepEqual(updated.metadata.context, context, 'update changed the context');

await rejects(
  vault.updateObject({ id: created.id, value: 'eve@example.com', versionCheck: created.versionId }),
  ConflictException, 'update with a stale version check');
assert.equal((await vault.readObject({ id: created.id })).value, 'bob@example.com', 'a stale update changed the value');

const versions = await vault.listObjectVersions({ id: created.id });
assert.equal(versions.length, 2, 'versions: want 2');
assert.ok(versions[0].currentVersion, 'versions: the first is not current');
assert.equal(versions[0].id, updated.metadata.versionId, 'versions: the first is not the update');

for (let i = 0; i < 12; i++) {
  await vault.createObject({ name: `node/list/${String(i).padStart(2, '0')}`, value: `v${i}`, context });
}
const firstPage = await vault.listObjects({ limit: 5, order: 'asc' });
assert.equal(firstPage.data.length, 5, 'list: want a page of 5');
assert.equal(firstPage.data[0].name, 'node/email', 'list: want names in ascending order');
assert.ok(firstPage.listMetadata.after, 'list: want an after cursor');
const secondPage = await vault.listObjects({ limit: 5, order: 'asc', after: firstPage.listMetadata.after });
assert.equal(secondPage.data[0].name, 'node/list/04', 'list: second page starts elsewhere');
const all = await (await vault.listObjects({ order: 'asc' })).autoPagination();
assert.equal(all.length, 13, 'list with auto pagination: want 13 objects');

await vault.deleteObject({ id: created.id });
await rejects(vault.readObject({ id: created.id }), NotFoundException, 'read after delete');
await rejects(vault.deleteObject({ id: created.id }), NotFoundException, 'delete after delete');

const sealed = await vault.encrypt('secret text', context, 'aad');
assert.equal(await vault.decrypt(sealed, 'aad'), 'secret text', 'data key round trip');

const wrongKey = new WorkOS('sk_test_wrong', options);
await rejects(wrongKey.vault.readObject({ id: created.id }), UnauthorizedException, 'wrong API key');

console.log('node sdk: all checks passed');
