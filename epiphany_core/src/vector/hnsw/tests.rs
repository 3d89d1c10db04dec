use super::*;
use crate::vector::kmeans::Rng;

/// Clustered points: `clusters` centres, points spread around them.
fn data(n: usize, dims: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| {
            (0..dims)
                .map(|_| (rng.next_f64() * 20.0 - 10.0) as f32)
                .collect()
        })
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % clusters];
            c.iter()
                .map(|&x| x + (rng.next_f64() * 2.0 - 1.0) as f32)
                .collect()
        })
        .collect()
}

fn exact(points: &[Vec<f32>], q: &[f32], k: usize, metric: Metric) -> Vec<NodeId> {
    let mut all: Vec<Scored> = points
        .iter()
        .enumerate()
        .map(|(i, p)| Scored {
            distance: metric.distance(p, q),
            node: i as NodeId,
        })
        .collect();
    all.sort();
    all.truncate(k);
    all.iter().map(|s| s.node).collect()
}

fn recall(metric: Metric) -> f64 {
    // Queries are held-out points of the same distribution.
    let mut points = data(3100, 24, 30, 7);
    let queries = points.split_off(3000);
    let mut g = Graph::new(Params::new(12, 64, metric).unwrap(), 24);
    for p in &points {
        g.insert(p).unwrap();
    }
    let mut hits = 0;
    for q in &queries {
        let want: FxHashSet<NodeId> = exact(&points, q, 10, metric).into_iter().collect();
        hits += search(&mut g, q, 10, 40)
            .iter()
            .filter(|s| want.contains(&s.node))
            .count();
    }
    hits as f64 / (10 * queries.len()) as f64
}

#[test]
fn recall_at_10_is_high_for_every_metric() {
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let r = recall(metric);
        assert!(r >= 0.95, "{metric:?}: recall@10 {r}");
    }
}

#[test]
fn builds_are_deterministic_and_links_bounded() {
    let points = data(500, 8, 5, 3);
    let build = || {
        let mut g = Graph::new(Params::new(8, 32, Metric::L2).unwrap(), 8);
        for p in &points {
            g.insert(p).unwrap();
        }
        g
    };
    let (mut a, b) = (build(), build());
    assert_eq!(a.links, b.links);
    assert_eq!(a.entry, b.entry);
    let mut n = Vec::new();
    for node in 0..a.len() as u32 {
        for level in 0..=a.level(node) {
            a.neighbors(node.into(), level, &mut n);
            assert!(n.len() <= a.params.max_neighbors(level));
            assert!(!n.contains(&node.into()));
        }
    }
    assert!(a.memory_bytes() > 500 * 8 * 4);
}

#[test]
fn small_and_degenerate_graphs() {
    let mut g = Graph::new(Params::new(4, 8, Metric::L2).unwrap(), 2);
    assert!(search(&mut g, &[0.0, 0.0], 3, 10).is_empty());
    g.insert(&[1.0, 1.0]).unwrap();
    let found = search(&mut g, &[0.0, 0.0], 3, 10);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].distance, 2.0);
    // Many equal vectors still make a searchable graph. (A point added after them
    // may lose every link into it when the lists fill with ties: an index stores
    // equal vectors as one node with many rows, as pgvector does.)
    for _ in 0..50 {
        g.insert(&[1.0, 1.0]).unwrap();
    }
    let found = search(&mut g, &[1.0, 1.0], 5, 10);
    assert_eq!(found.len(), 5);
    assert!(found.iter().all(|s| s.distance == 0.0));
    assert!(g.insert(&[1.0]).is_err());
}

#[test]
fn zero_vectors_come_last_under_cosine() {
    let mut g = Graph::new(Params::new(4, 8, Metric::Cosine).unwrap(), 2);
    g.insert(&[0.0, 0.0]).unwrap();
    g.insert(&[1.0, 0.0]).unwrap();
    g.insert(&[0.0, 1.0]).unwrap();
    let found = search(&mut g, &[1.0, 0.1], 3, 10);
    assert_eq!(found.last().unwrap().node, 0);
}

#[test]
fn parallel_builds_reach_the_same_recall() {
    let mut points = data(3100, 24, 30, 7);
    let queries = points.split_off(3000);
    let flat: Vec<f32> = points.iter().flatten().copied().collect();
    let params = Params::new(12, 64, Metric::L2).unwrap();
    let mut ticks = 0;
    let mut g = Graph::build_parallel(params, 24, flat, 3, |_| ticks += 1).unwrap();
    assert_eq!(g.len(), 3000);
    assert!(ticks > 0);
    let mut hits = 0;
    for q in &queries {
        let want: FxHashSet<NodeId> = exact(&points, q, 10, Metric::L2).into_iter().collect();
        hits += search(&mut g, q, 10, 40)
            .iter()
            .filter(|s| want.contains(&s.node))
            .count();
    }
    let recall = hits as f64 / (10 * queries.len()) as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");
    let mut n = Vec::new();
    for node in 0..g.len() as u32 {
        for level in 0..=g.level(node) {
            g.neighbors(node.into(), level, &mut n);
            assert!(n.len() <= params.max_neighbors(level));
        }
    }
    // A panicking tick stops the build instead of hanging it.
    let flat: Vec<f32> = points.iter().flatten().copied().collect();
    let r = std::panic::catch_unwind(|| {
        Graph::build_parallel(params, 24, flat, 2, |_| panic!("cancelled"))
    });
    assert!(r.is_err());
    assert!(Graph::build_parallel(params, 24, vec![1.0; 25], 2, |_| {}).is_err());
    assert!(Graph::build_parallel(params, 24, Vec::new(), 2, |_| {})
        .unwrap()
        .is_empty());
}

#[test]
fn prepared_cosine_orders_like_cosine() {
    let points = data(200, 6, 4, 9);
    let q = &points[0];
    let pq = Metric::Cosine.prepare(q);
    let mut raw: Vec<(f32, usize)> = points
        .iter()
        .enumerate()
        .map(|(i, p)| (Metric::Cosine.distance(p, q), i))
        .collect();
    let mut prepared: Vec<(f32, usize)> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                Metric::InnerProduct.distance(&Metric::Cosine.prepare(p), &pq),
                i,
            )
        })
        .collect();
    raw.sort_by(|a, b| a.0.total_cmp(&b.0));
    prepared.sort_by(|a, b| a.0.total_cmp(&b.0));
    let first = |v: &[(f32, usize)]| v.iter().take(20).map(|x| x.1).collect::<Vec<_>>();
    assert_eq!(first(&raw), first(&prepared));
    let zero = Metric::Cosine.prepare(&[0.0; 6]);
    assert_eq!(Metric::InnerProduct.distance(&zero, &pq), f32::INFINITY);
    assert!(matches!(Metric::L2.prepare(q), Cow::Borrowed(_)));
}

#[test]
fn bad_parameters_are_errors() {
    assert!(Params::new(1, 64, Metric::L2).is_err());
    assert!(Params::new(101, 200, Metric::L2).is_err());
    assert!(Params::new(16, 8, Metric::L2).is_err());
    assert!(Params::new(16, 2000, Metric::L2).is_err());
}

/// Nodes on a line: node i at x = i.
fn on_a_line(a: NodeId, b: NodeId) -> f32 {
    (a as f32 - b as f32).abs()
}

#[test]
fn linking_into_a_list_adds_keeps_or_forces() {
    let owner = 0;
    let link = |current: &[NodeId], new: NodeId, max: usize, force: bool| {
        link_into(
            current,
            new,
            on_a_line(owner, new),
            max,
            force,
            |n| on_a_line(owner, n),
            on_a_line,
        )
    };
    // Room: appended. Already there: unchanged.
    assert_eq!(link(&[1, 2], 3, 3, false), Some(vec![1, 2, 3]));
    assert_eq!(link(&[1, 2], 2, 3, false), None);
    // Full: a nearer node is kept, the list stays within max.
    let l = link(&[2, 3, 4], 1, 3, false).unwrap();
    assert!(l.contains(&1) && l.len() == 3, "{l:?}");
    // Full, and the farthest candidate: dropped, unless forced in.
    assert_eq!(link(&[1, 2, 3], 9, 3, false), None);
    let l = link(&[1, 2, 3], 9, 3, true).unwrap();
    assert!(l.contains(&9) && l.len() == 3, "{l:?}");
}

#[test]
fn a_list_changed_meanwhile_is_computed_again() {
    let mut g = testing::MemoryGraph {
        lists: vec![vec![1], vec![], vec![], vec![]],
        vectors: (0..4).map(|i| vec![i as f32]).collect(),
        entry: 0,
        // Between the read and the write, someone links 2 into node 0's list.
        race: Some((0, vec![1, 2])),
        writes: 0,
    };
    link_stored(&mut g, 0, 3, 9.0, 0, 4, false);
    assert_eq!(g.lists[0], [1, 2, 3]);
    assert_eq!(g.writes, 1);
    // Already linked: nothing written.
    link_stored(&mut g, 0, 3, 9.0, 0, 4, false);
    assert_eq!(g.writes, 1);
}
