/// RTP/RTCP port pairs from `[media] ports`: even RTP ports, RTCP on the next odd one.
/// Freed ports go to the back of the queue so a port is not reused while stray packets of
/// its last call may still arrive.
#[derive(Debug)]
pub struct PortPool {
    free: std::collections::VecDeque<u16>,
    size: usize,
}

impl PortPool {
    /// Every even port `p` in `first..=last` with `p + 1` also in range.
    pub fn new(first: u16, last: u16) -> Self {
        let start = first + first % 2;
        let free: std::collections::VecDeque<u16> = (start..last).step_by(2).collect();
        PortPool {
            size: free.len(),
            free,
        }
    }

    pub fn alloc(&mut self) -> Option<u16> {
        self.free.pop_front()
    }

    pub fn free(&mut self, port: u16) {
        self.free.push_back(port);
    }

    /// Pairs not in use.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Pairs in the pool.
    pub fn size(&self) -> usize {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_rtp_ports_with_room_for_rtcp() {
        let mut p = PortPool::new(20001, 20007);
        assert_eq!(p.size(), 3);
        assert_eq!(p.alloc(), Some(20002));
        assert_eq!(p.alloc(), Some(20004));
        assert_eq!(p.alloc(), Some(20006));
        assert_eq!(p.alloc(), None);
        p.free(20004);
        assert_eq!(p.available(), 1);
        assert_eq!(p.alloc(), Some(20004));
    }
}
