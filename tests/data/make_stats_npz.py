# Makes the reference .npz files the stats-file tests read (run with any NumPy >= 1.17):
#   python3 make_stats_npz.py
# They were written by NumPy 2.4.6 (np.savez_compressed writes deflate members with zip64
# local headers; np.savez stored members).
import numpy as np

mu = np.array([1.5, -2.0, 3.25])
sigma = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.25], [0.0, 0.25, 3.0]])
np.savez_compressed("stats_numpy_compressed.npz", mu=mu, sigma=sigma)

# float32 mu and a Fortran-order (non-symmetric, to show the transposition) sigma, stored.
np.savez("stats_numpy_stored_f32_fortran.npz", mu=np.array([0.25, 0.5, 0.75], dtype=np.float32),
         sigma=np.asfortranarray(np.arange(1.0, 10.0).reshape(3, 3)))
