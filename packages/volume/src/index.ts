/**
 * @packageDocumentation
 * The volume layer: {@link Volume} turns a {@link BlockStore} of fixed-size blocks into a
 * {@link BlockDevice} addressed by byte offset (what an NBD export serves), and
 * {@link openVolume} opens one by name under the volume's write lock, keeping its lease alive
 * and refusing writes once the lock is lost. {@link VolumeManager} shares one open volume among
 * the connections that serve it (what an NBD gateway needs).
 */
export type { BlockDevice, BlockDeviceSupports, BlockStore, MetadataStore, VolumeInfo, VolumeLock } from '@torus/core'
export { Volume, volumeSupports, type VolumeOptions, type VolumeStatus } from './volume.js'
export { VolumeLease, type VolumeLeaseOptions } from './volume-lease.js'
export { openVolume, type OpenVolumeOptions } from './open-volume.js'
export { VolumeManager, type VolumeHandle, type VolumeManagerOptions } from './volume-manager.js'
