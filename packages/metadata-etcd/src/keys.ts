/** Keys relative to the store's prefix; see the package README for what each holds. */
export const ETCD_KEYS = Object.freeze({
  cluster: 'cluster',
  volumes: 'volumes/',
  volume: (name: string): string => `volumes/${name}`,
  volumeIds: 'volume-ids/',
  nextVolumeId: 'volume-ids/next',
  /** Reservation of one id, written with the volume: makes a second volume with the same id impossible. */
  volumeId: (id: number): string => `volume-ids/${id}`,
  lock: (name: string): string => `locks/${name}`,
  peers: 'peers/',
  peer: (id: string): string => `peers/${id}`,
  alivePeers: 'peers-alive/',
  alivePeer: (id: string): string => `peers-alive/${id}`,
  ring: 'ring',
  stale: 'stale/',
  /** Every stale-replica record of one volume (the trailing slash keeps volume 1 from matching 10). */
  staleVolume: (id: number): string => `stale/${id}/`,
  staleReplica: (key: { volumeId: number; peer: string; index: number | 'all' }): string => `stale/${key.volumeId}/${key.peer}/${key.index}`,
})
